"""Views of ``caxton history`` and ``caxton rollback``: an agent's kept revisions, and going back to one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caxton.cli.views.registry import Shown, text_view
from caxton.cli.views.text import short, table, when

if TYPE_CHECKING:
    from caxton.spec.api import AgentHistory, OperationResult


@text_view("AgentHistory")
def history_text(result: AgentHistory) -> Iterator[str]:
    yield f"{result.name} ({result.state}, serving revision {result.serving})"
    rows = [(str(r.revision), r.version, short(r.digest), short(r.git_commit), when(r.applied_at), r.outcome)
            for r in result.revisions]
    yield from table(("REVISION", "VERSION", "DIGEST", "COMMIT", "APPLIED AT", "OUTCOME"), rows)


@dataclass(frozen=True)
class Reverted(Shown):
    """``rollback``: the agent back at a kept revision."""

    result: OperationResult


@text_view("Reverted")
def reverted_text(reverted: Reverted) -> list[str]:
    result = reverted.result
    return [f"{result.name}: revision {result.revision} serving ({result.state}); "
            "the next plan from git shows this as drift"]
