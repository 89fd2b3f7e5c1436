"""The rollout record: what the controller persists and ``caxton rollout status`` shows.

A ``Rollout`` is one attempt to move an agent from its stable revision to a
candidate revision with a strategy. It is saved (as JSON) after every change
of step, weights, status or measurements, so an engine killed mid-rollout
resumes from the same step. ``Step`` is one phase of a strategy (traffic
share of the candidate, stickiness, mirroring, analysis, duration). Pure
data; ``caxton.engine.state.rollouts`` stores it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from caxton.spec.api import ROLLOUT_ACTIVE, ROLLOUT_FINAL, RolloutStatus

# The statuses of ``caxton.spec.api.RolloutStatus``, as the plain strings the records hold.
RUNNING = RolloutStatus.RUNNING.value
PAUSED = RolloutStatus.PAUSED.value
SUCCEEDED = RolloutStatus.SUCCEEDED.value
ROLLED_BACK = RolloutStatus.ROLLED_BACK.value
FAILED = RolloutStatus.FAILED.value
CANCELLED = RolloutStatus.CANCELLED.value
#: Ended by a newer desired version (or by the stable one being desired again): the candidate was
#: aborted back to stable, as a rollback does, but nothing failed.
SUPERSEDED = RolloutStatus.SUPERSEDED.value
ACTIVE = frozenset(status.value for status in ROLLOUT_ACTIVE)
FINAL = frozenset(status.value for status in ROLLOUT_FINAL)

Verdict = Literal["pass", "fail", "no_data"]


@dataclass(frozen=True)
class Step:
    """One phase of a strategy.

    ``weight``: the candidate's share of new conversations (percent).
    ``sticky``: conversations stay on the revision that started them.
    ``mirror``: the candidate gets a copy of every message (shadow).
    ``analyze``: check the candidate every ``interval``; ``checks``: run preview checks first.
    ``duration``: seconds the step lasts (None: until the strategy says it is complete).
    """

    label: str
    weight: int
    sticky: bool = True
    mirror: bool = False
    analyze: bool = True
    checks: bool = False
    duration: float | None = None


@dataclass
class Measurement:
    """One analysis result: a metric of a revision against its threshold."""

    at: str
    step: int
    metric: str
    revision: int
    value: float | None
    threshold: float | None
    comparison: str
    verdict: Verdict
    requests: int
    baseline: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Rollout:
    """One rollout of one agent, as persisted."""

    id: str
    agent_id: str
    name: str
    strategy: str
    status: str
    stable_revision: int
    candidate_revision: int
    candidate_version: str
    spec: dict[str, Any]
    started_at: str
    updated_at: str
    step: int = 0
    step_started_at: str = ""
    weights: dict[str, int] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    finished_at: str | None = None
    reason: str = ""
    measurements: list[dict[str, Any]] = field(default_factory=list)
    apply_id: str | None = None
    actor: str | None = None
    plan_id: str | None = None
    git_commit: str | None = None
    #: Measured durations, e.g. ``verdict_to_stable_ms`` of a rollback.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
