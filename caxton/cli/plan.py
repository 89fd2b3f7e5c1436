"""``caxton plan``: show what apply would change, optionally save the plan.

Thin: load the desired state and the engine's snapshot (``caxton.client.plans``),
build the plan (pure, ``caxton.planning``), render it. ``--detailed-exitcode``:
0 no changes, 1 error, 2 changes present.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli.common import (
    DEFAULT_ENGINE_URL,
    EngineOption,
    TokenOption,
    default_project,
    load_options,
    note,
)
from caxton.errors import ValidationFailed

if TYPE_CHECKING:
    from caxton.client.plans import Planned
    from caxton.spec.diagnostics import Diagnostic
    from caxton.spec.plan import Plan

DirArgument = Annotated[
    str | None,
    typer.Argument(help="Directory of agent files (default: agents/, or caxton.yaml's agents_dir).", show_default=False),
]
RefOption = Annotated[str | None, typer.Option("--ref", help="Plan DIR as it is at this git revision.")]
NoPruneOption = Annotated[bool, typer.Option("--no-prune", help="Never delete agents missing from the desired state.")]
AllowDeleteAllOption = Annotated[
    bool, typer.Option("--allow-delete-all", help="Allow a plan that deletes every agent on the engine.")
]


class PlanFormat(str, Enum):
    """How ``caxton plan`` and ``caxton show`` print a plan."""

    text = "text"
    json = "json"
    markdown = "markdown"


PlanFormatOption = Annotated[PlanFormat, typer.Option(
    "--output", "-o", help="Output format: text, the plan JSON, or markdown (for a pull-request comment or "
    "$GITHUB_STEP_SUMMARY).")]
TargetOption = Annotated[list[str] | None, typer.Option(
    "--target", metavar="AGENT", show_default=False,
    help="Plan only this agent (repeatable); changes to other agents are left out.")]


def plan(
    directory: DirArgument = None,
    ref: RefOption = None,
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Save the plan (JSON) for `caxton apply FILE`.")] = None,
    output: PlanFormatOption = PlanFormat.text,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes (0 none, 1 error).")
    ] = False,
    no_prune: NoPruneOption = False,
    allow_delete_all: AllowDeleteAllOption = False,
    targets: TargetOption = None,
) -> int:
    """Compare the desired state with the engine and show the changes apply would make.

    \b
    Examples:
      caxton plan                      agents/ here against http://127.0.0.1:8080
      caxton plan --detailed-exitcode  exit 2 when there are changes (CI)
      caxton plan agents/ --engine URL --out plan.json
      caxton plan -o markdown          for a pull request or $GITHUB_STEP_SUMMARY
    """
    from caxton.planning import planfile

    planned = make_plan(directory, ref, engine, token, prune=not no_prune, allow_delete_all=allow_delete_all,
                        targets=targets or ())
    if out is not None:
        out.write_text(planfile.dumps(planned.plan), encoding="utf-8")
        note(f"saved the plan to {out}; apply it with: caxton apply {out}")
    warnings = _warnings(planned) if output is PlanFormat.markdown else ()
    sys.stdout.write(rendered(planned.plan, output, warnings=warnings))
    return 2 if detailed_exitcode and planned.plan.has_changes else 0


def rendered(plan: Plan, output: PlanFormat, *, warnings: Sequence[Diagnostic] = ()) -> str:
    """``plan`` as ``output`` says (``warnings``: the desired state's, shown by the markdown form)."""
    from caxton.planning import markdown, planfile, render

    if output is PlanFormat.json:
        return planfile.dumps(plan)
    if output is PlanFormat.markdown:
        return markdown.render_markdown(plan, warnings)
    return render.render_text(plan)


def _warnings(planned: Planned) -> list[Diagnostic]:
    """The desired state's warnings, paths relative to the cwd as ``caxton validate`` prints them."""
    from caxton.cli import validate
    from caxton.spec.diagnostics import Severity

    report = validate.build_report([planned.desired], strict=False)
    return [d for d in report.diagnostics if d.severity is Severity.WARNING]


def make_plan(
    directory: str | None, ref: str | None, engine: str, token: str | None, *, prune: bool, allow_delete_all: bool,
    targets: Sequence[str] = (),
) -> Planned:
    """Plan ``directory`` (only ``targets``, when given) against ``engine``; invalid desired state prints its
    diagnostics to stderr."""
    from caxton.client import plans
    from caxton.client.engine import EngineClient

    path = directory or default_project()
    try:
        with EngineClient(engine, token=token) as client:
            return plans.make(client, path, ref=ref, prune=prune, allow_delete_all=allow_delete_all,
                              options=load_options(), targets=targets)
    except ValidationFailed as invalid:
        print_diagnostics(invalid)
        raise


def print_diagnostics(invalid: ValidationFailed) -> None:
    from caxton.cli import validate
    from caxton.desired.model import DesiredState
    from caxton.validation import report

    state = invalid.details
    if isinstance(state, DesiredState):
        sys.stderr.write(report.render_text(validate.build_report([state], strict=False)))
