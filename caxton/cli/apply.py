"""``caxton apply [PLAN_FILE | DIR]``: make the engine match the desired state.

With a plan file: apply exactly that plan (refused when stale). With a
directory: plan, show the plan, ask for confirmation (``--auto-approve`` when
stdin is not a terminal), then apply. The engine executes the changes; this
command takes the apply lock, submits, releases the lock once the engine
accepted every change, and follows progress until the outcome
(``--no-wait``: returns once accepted), as ``caxton applies follow`` does
(``caxton.cli.applies``). Exit 0 success / nothing to do, 1 a change failed,
3 a rollout rolled back, 4 still in progress at ``--timeout``, 130 Ctrl-C
while following (the engine carries on).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli import progress
from caxton.cli.applies import Watch, finish, interrupted, timed_out
from caxton.cli.common import (
    AllowDeleteAllOption,
    NoPruneOption,
    Output,
    OutputOption,
    RefOption,
    TargetOption,
    TokenOption,
    load_options,
)
from caxton.cli.plan import make_plan
from caxton.cli.views import render
from caxton.errors import ApplyTimeout, CaxtonError, InvalidInput

if TYPE_CHECKING:
    from caxton.client.plan_apply import ApplyOutcome, Planned
    from caxton.client.transport import EngineClient

TargetArgument = Annotated[
    str | None,
    typer.Argument(help="A plan file from `caxton plan --out`, or a directory of agent files (default: agents/).",
                   show_default=False),
]


def apply(
    target: TargetArgument = None,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking for confirmation.")] = False,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", "--detach",
        help="Return once the engine accepted every change (rollouts started); do not wait for the rollouts.",
    )] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds to wait for the outcome before giving up (exit 4; the engine carries on).",
    )] = 600.0,
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
    targets: TargetOption = None,
) -> int:
    """Apply a saved plan, or plan and apply a directory.

    \b
    Examples:
      caxton apply             plan agents/ here, confirm, then apply
      caxton apply plan.json   exactly a plan saved by `caxton plan --out`
      caxton apply agents/ --auto-approve --engine URL
    """
    from caxton.client.transport import EngineClient

    planned = _saved(target, engine, targets) if _is_plan_file(target) else _fresh(
        target, ref, engine, token, output, auto_approve, prune=not no_prune, allow_delete_all=allow_delete_all,
        targets=targets or ())
    if planned is None or not planned.plan.has_changes:
        return 0
    url = engine or planned.plan.engine_url
    changes = [] if no_wait else [(c.id, c.action) for c in planned.plan.changes if c.action != "no-op"]
    with EngineClient(url, token=token) as client, progress.printer(output is Output.json, changes) as show:
        watch = Watch(show, client.base_url, output)
        outcome = _submit_and_follow(client, planned, watch, no_wait=no_wait, timeout=timeout)
    return finish(outcome, output)


def _submit_and_follow(client: EngineClient, planned: Planned, watch: Watch, *, no_wait: bool,
                       timeout: float) -> ApplyOutcome:
    """Submit (the lock is held only until the engine accepted it), then follow unless ``no_wait``; on
    --timeout, say what the apply waits for; on Ctrl-C once submitted, say how to follow it again."""
    from caxton.client import plan_apply

    try:
        return plan_apply.run(client, planned.plan, planned.desired, on_line=watch, detach=no_wait, timeout=timeout,
                              on_submitted=watch.submitted)
    except ApplyTimeout as error:
        timed_out(error, watch)
        raise
    except KeyboardInterrupt:
        if watch.apply_id is None:
            raise
        interrupted(watch.apply_id)


def _is_plan_file(target: str | None) -> bool:
    return target is not None and Path(target).is_file() and Path(target).suffix == ".json"


def _saved(target: str | None, engine: str | None, targets: list[str] | None) -> Planned:
    from caxton.client import plan_apply, urls
    from caxton.client.plan_apply import Planned
    from caxton.planning import planfile

    assert target is not None
    if targets:
        raise InvalidInput("--target narrows a plan while it is made; a saved plan is applied as it was saved",
                           hint="make the plan with `caxton plan --target AGENT --out FILE`, or drop --target")
    plan = planfile.loads(Path(target).read_text(encoding="utf-8"), where=target)
    if engine and urls.normalise(engine) != urls.normalise(plan.engine_url):
        raise InvalidInput(f"the plan was made against {plan.engine_url}, not {engine}",
                           hint="plan again against this engine, or drop --engine")
    return Planned(plan, plan_apply.reload_for(plan, load_options()))


def _fresh(
    target: str | None, ref: str | None, engine: str | None, token: str | None, output: Output, auto_approve: bool,
    *, prune: bool, allow_delete_all: bool, targets: Sequence[str],
) -> Planned | None:
    from caxton.cli.common import DEFAULT_ENGINE_URL
    from caxton.cli.views.plans import Planned

    planned = make_plan(target, ref, engine or DEFAULT_ENGINE_URL, token, prune=prune, allow_delete_all=allow_delete_all,
                        targets=targets)
    render(Planned(planned.plan), output)
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
