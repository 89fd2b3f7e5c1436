"""``caxton apply [PLAN_FILE | DIR]``: make the engine match the desired state.

With a plan file: apply exactly that plan (refused when stale). With a
directory: plan, show the plan, ask for confirmation (``--auto-approve`` when
stdin is not a terminal), then apply. The engine executes the changes; this
command takes the apply lock, submits, and follows progress until the
outcome (or ``--detach``). Exit 0 success / nothing to do, 1 a change failed,
3 a rollout rolled back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from caxton.cli import progress
from caxton.cli.common import Output, OutputOption, TokenOption, echo, load_options, note
from caxton.cli.plan import AllowDeleteAllOption, NoPruneOption, RefOption, make_plan
from caxton.errors import CaxtonError, InvalidInput, RolledBack

if TYPE_CHECKING:
    from caxton.client.applying import ApplyOutcome
    from caxton.client.plans import Planned

TargetArgument = Annotated[
    str | None,
    typer.Argument(help="A plan file from `caxton plan --out`, or a directory of agent files (default: agents/).",
                   show_default=False),
]


def apply(
    target: TargetArgument = None,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking for confirmation.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Return once the engine accepted the plan.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to follow the apply before giving up.")] = 600.0,
    ref: RefOption = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", envvar="CAXTON_ENGINE_URL", show_default=False,
                     help="URL of the engine API (default: the plan's engine, or http://127.0.0.1:8080)."),
    ] = None,
    token: TokenOption = None,
    output: OutputOption = Output.text,
    no_prune: NoPruneOption = False,
    allow_delete_all: AllowDeleteAllOption = False,
) -> int:
    """Apply a saved plan, or plan and apply a directory.

    \b
    Examples:
      caxton apply             plan agents/ here, confirm, then apply
      caxton apply plan.json   exactly a plan saved by `caxton plan --out`
      caxton apply agents/ --auto-approve --engine URL
    """
    from caxton.client import applying
    from caxton.client.engine import EngineClient

    planned = _saved(target, engine) if _is_plan_file(target) else _fresh(
        target, ref, engine, token, output, auto_approve, prune=not no_prune, allow_delete_all=allow_delete_all)
    if planned is None:
        return 0
    url = engine or planned.plan.engine_url
    changes = [] if detach else [(c.id, c.action) for c in planned.plan.changes if c.action != "no-op"]
    with EngineClient(url, token=token) as client, progress.printer(output is Output.json, changes) as show:
        outcome = applying.run(client, planned.plan, planned.desired, on_line=show, detach=detach, timeout=timeout)
    return _finish(outcome, output)


def _is_plan_file(target: str | None) -> bool:
    return target is not None and Path(target).is_file() and Path(target).suffix == ".json"


def _saved(target: str | None, engine: str | None) -> Planned:
    from caxton.client import plans
    from caxton.client.plans import Planned
    from caxton.planning import planfile

    assert target is not None
    plan = planfile.loads(Path(target).read_text(encoding="utf-8"), where=target)
    if engine and engine.rstrip("/") != plan.engine_url.rstrip("/"):
        raise InvalidInput(f"the plan was made against {plan.engine_url}, not {engine}",
                           hint="plan again against this engine, or drop --engine")
    return Planned(plan, plans.reload_for(plan, load_options()))


def _fresh(
    target: str | None, ref: str | None, engine: str | None, token: str | None, output: Output, auto_approve: bool,
    *, prune: bool, allow_delete_all: bool,
) -> Planned | None:
    from caxton.cli.common import DEFAULT_ENGINE_URL
    from caxton.planning import planfile, render

    planned = make_plan(target, ref, engine or DEFAULT_ENGINE_URL, token, prune=prune, allow_delete_all=allow_delete_all)
    if output is Output.json:
        sys.stdout.write(json.dumps({"event": "plan", "plan": json.loads(planfile.dumps(planned.plan))}) + "\n")
    else:
        sys.stdout.write(render.render_text(planned.plan))
    if not planned.plan.has_changes:
        return None
    if not auto_approve:
        _confirm()
    return planned


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise InvalidInput("refusing to apply without confirmation: standard input is not a terminal",
                           hint="review the plan, then pass --auto-approve (or apply a saved plan file)")
    answer = typer.prompt("\nDo you want to perform these actions? Only 'yes' will be accepted", default="",
                          show_default=False)
    if answer.strip() != "yes":
        raise CaxtonError("apply cancelled: nothing was changed")


def _finish(outcome: ApplyOutcome, output: Output) -> int:
    counts = outcome.counts()
    if output is Output.json:
        sys.stdout.write(json.dumps({"event": "outcome", "apply_id": outcome.apply_id, "status": outcome.status,
                                     "counts": counts, "results": outcome.results}) + "\n")
    elif outcome.status == "detached":
        echo(f"Apply {outcome.apply_id} submitted; the engine carries it out (follow with `caxton agents list`).")
    elif outcome.status != "nothing":
        parts = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        echo(f"\nApply {outcome.status}: {parts}.")
    if outcome.status in ("failed", "interrupted"):
        failed = [r for r in outcome.results if r["status"] == "failed"]
        for result in failed:
            note(f"error: {result['id']}: {result['message']}")
        raise CaxtonError(f"apply {outcome.apply_id} {outcome.status}: {len(failed)} change(s) failed",
                          hint="see the engine's events (`caxton agents status NAME`); fix and apply again")
    if outcome.status == "rolled_back":
        raise RolledBack(f"apply {outcome.apply_id} finished, but a rollout was rolled back")
    return 0
