"""The desired state as plain data: agents, their digests, and the diagnostics found.

Built by ``caxton.desired.loader``; read by the planner (``caxton.planning``),
the engine's reconcile loop and ``caxton validate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from caxton.spec.agent import ConfigAgent, WasmAgent
from caxton.spec.diagnostics import Diagnostic, has_errors


@dataclass(frozen=True)
class DesiredAgent:
    """One agent as declared in the repository.

    ``file`` is the posix path of the agent file relative to the root;
    ``digest`` covers the spec and the module's sha256 (``caxton.spec.digest.spec_digest``).
    """

    spec: ConfigAgent | WasmAgent
    file: str
    module_bytes: bytes | None
    module_sha256: str | None
    digest: str

    @property
    def id(self) -> str:
        return self.spec.id


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
