"""Views of a plan: as ``caxton plan`` and ``caxton show`` print it (text, plan JSON, markdown), and as
``caxton apply`` shows it before applying (text, or a ``plan`` event among its JSON lines)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caxton.cli.views.registry import Event, event, json_view, text_view

if TYPE_CHECKING:
    from caxton.cli.common import PlanFormat
    from caxton.spec.diagnostics import Diagnostic
    from caxton.spec.plan import Plan


@dataclass(frozen=True)
class Planned:
    """A plan about to be applied."""

    plan: Plan


@json_view("Planned")
def planned_json(planned: Planned) -> Event:
    import json

    from caxton.planning import planfile

    return event("plan", plan=json.loads(planfile.dumps(planned.plan)))


@text_view("Planned")
def planned_text(planned: Planned) -> list[str]:
    from caxton.planning import render

    return render.render_text(planned.plan).removesuffix("\n").split("\n")


def rendered(plan: Plan, output: PlanFormat, *, warnings: Sequence[Diagnostic] = ()) -> str:
    """``plan`` as ``output`` says (``warnings``: the desired state's, shown by the markdown form)."""
    from caxton.cli.common import PlanFormat
    from caxton.planning import markdown, planfile, render

    if output is PlanFormat.json:
        return planfile.dumps(plan)
    if output is PlanFormat.markdown:
        return markdown.render_markdown(plan, warnings)
    return render.render_text(plan)
