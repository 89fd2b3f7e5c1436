"""The engine's live state snapshot (``GET /api/v1/state``), which ``plan`` diffs against.

Shared vocabulary between the engine (which produces it) and planning (which
consumes it). The ``spec`` of each agent is the JSON of its running revision's
agent model (``model_dump(mode="json")``); ``applied_spec_digest`` is the
digest recorded when it was last deployed through the deploy operation, so a
difference between ``spec_digest`` and it, or a state other than the desired
one, is drift.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

CONFIG_STATES = ("Unvalidated", "Validated", "Registered", "Active", "Suspended", "Inactive", "Failed")
WASM_STATES = ("Unloaded", "Loaded", "Running", "Draining", "Stopped", "Failed")
#: The state an agent is in when it serves traffic, by kind.
SERVING_STATE = {"config": "Active", "wasm": "Running"}


class RolloutState(BaseModel):
    """An agent's in-flight (running or paused) rollout from its stable revision to a candidate."""

    id: str
    strategy: str
    status: str = Field(description="running | paused")
    step: int = Field(description="1-based step being run")
    steps: int = Field(description="number of steps")
    reason: str = Field("", description="why it is paused (e.g. inconclusive: error_rate: no data ...)")
    stable_revision: int
    stable_version: str
    candidate_revision: int
    candidate_version: str
    candidate_digest: str = Field(description="spec_digest of the candidate revision")
    apply_id: str | None = None


class AgentState(BaseModel):
    """One agent as the engine holds it: ``version``, ``revision``, ``spec`` describe the stable
    (serving baseline) revision; ``rollout`` the candidate in flight, if any."""

    id: str = Field(description="kebab-case identity")
    name: str
    kind: str
    version: str
    state: str
    revision: int = Field(description="revision number currently serving (1, 2, ...)")
    spec: dict[str, Any]
    spec_digest: str = Field(description="sha256 of the canonical JSON of spec (plus module digest)")
    applied_spec_digest: str | None = Field(None, description="digest last deployed by apply")
    module_sha256: str | None = None
    traffic: dict[str, int] = Field(default_factory=dict, description="revision number -> weight percent")
    git_commit: str | None = None
    plan_id: str | None = None
    updated_at: str | None = None
    rollout: RolloutState | None = Field(None, description="the in-flight (running or paused) rollout")


class StateSnapshot(BaseModel):
    """The whole live state: every agent plus the serial it was read at."""

    serial: int
    engine_version: str
    agents: list[AgentState] = Field(default_factory=list)
