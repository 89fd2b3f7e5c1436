"""``caxton plan``: show what apply would change, optionally save the plan.

Thin: load the desired state and the engine's snapshot (``caxton.client.plan_apply``),
build the plan (pure, ``caxton.planning``), render it. ``--detailed-exitcode``:
0 no changes, 1 error, 2 changes present.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli.common import (
    AllowDeleteAllOption,
    DEFAULT_ENGINE_URL,
    EngineOption,
    NoPruneOption,
    PlanFormat,
    PlanFormatOption,
    RefOption,
    TargetOption,
    TokenOption,
    connect,
    default_project,
    load_options,
    note,
)
from caxton.cli.views.plans import rendered
from caxton.errors import ValidationFailed

if TYPE_CHECKING:
    from caxton.client.plan_apply import Planned
    from caxton.spec.diagnostics import Diagnostic

DirArgument = Annotated[
    str | None,
    typer.Argument(help="Directory of agent files (default: agents/, or caxton.yaml's agents_dir).", show_default=False),
]


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
    from caxton.client import plan_apply

    path = directory or default_project()
    try:
        with connect(engine, token) as client:
            return plan_apply.make(client, path, ref=ref, prune=prune, allow_delete_all=allow_delete_all,
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
