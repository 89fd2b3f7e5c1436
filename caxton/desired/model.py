"""The desired state as plain data: agents, their digests, and the diagnostics found.

Built by ``caxton.desired.loader``; read by the planner (``caxton.planning``),
the engine's reconcile loop and ``caxton validate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from caxton.spec.diagnostics import Diagnostic, has_errors
from caxton.validation.results import ValidatedAgent

#: One agent as declared in the repository: ``file`` is the posix path of its
#: file relative to the root; ``digest`` covers the spec and the module's sha256
#: (``caxton.spec.digest.spec_digest``); ``name``, ``kind`` and ``version`` are
#: at hand, the spec model is built on first use of ``spec``.
DesiredAgent = ValidatedAgent


@dataclass(frozen=True)
class DesiredState:
    """Every agent of the repository (sorted by id) and every diagnostic found reading it.

    ``agents`` holds each file that parsed into a model, even one with semantic
    errors: callers must check ``has_errors()`` before acting on the state.
    Of two files with the same identity only the first (by path) is kept.
    """

    root: str
    agents: tuple[DesiredAgent, ...]
    diagnostics: tuple[Diagnostic, ...]
    digest: str
    git_commit: str | None
    source: str

    def has_errors(self, strict: bool = False) -> bool:
        """Errors present (with ``strict``, warnings count as errors)."""
        return has_errors(list(self.diagnostics), strict=strict)

    def by_id(self) -> dict[str, DesiredAgent]:
        return {agent.id: agent for agent in self.agents}
