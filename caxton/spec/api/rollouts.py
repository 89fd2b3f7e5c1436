"""Wire models of rollouts: a rollout record with its measurements, and its live analysis windows.

``RolloutStatus`` is the one vocabulary of a rollout's status for the engine
(``caxton.engine.rollouts.model``) and the CLI.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from caxton.spec.api.common import WireModel


class RolloutStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Ended by a newer desired version (or by the stable one being desired again).
    SUPERSEDED = "superseded"


ROLLOUT_ACTIVE = frozenset({RolloutStatus.RUNNING, RolloutStatus.PAUSED})
ROLLOUT_FINAL = frozenset(set(RolloutStatus) - ROLLOUT_ACTIVE)


class Measurement(WireModel):
    at: str
    step: int
    metric: str
    revision: int
    value: float | None
    threshold: float | None
    comparison: str
    verdict: str = Field(description="pass, fail or no_data")
    requests: int
    baseline: float | None = None
    detail: str = ""


class RolloutWindow(WireModel):
    requests: int
    errors: int
    error_rate: float | None
    p95_latency_ms: float | None
    compared: int
    divergence_rate: float | None


class RolloutLive(WireModel):
    step_elapsed_s: float
    next_check_in_s: float | None
    candidate: RolloutWindow
    stable: RolloutWindow
    stable_conversations: int


class RolloutView(WireModel):
    """One rollout; ``live`` only while it runs on this engine."""

    id: str
    agent_id: str
    name: str
    strategy: str
    status: RolloutStatus
    stable_revision: int
    candidate_revision: int
    candidate_version: str
    spec: dict[str, Any]
    started_at: str
    updated_at: str
    step: int
    step_started_at: str
    weights: dict[str, int]
    steps: list[str]
    finished_at: str | None
    reason: str
    measurements: list[Measurement]
    apply_id: str | None
    actor: str | None
    plan_id: str | None
    git_commit: str | None
    timings: dict[str, float]
    live: RolloutLive | None = None


class RolloutList(WireModel):
    rollouts: list[RolloutView] = Field(description="newest first")


class SeriesPoint(WireModel):
    """One time bucket of one revision: ``[t_s, t_s + bucket_s)`` seconds after the series began."""

    t_s: float
    at: str = Field(description="when the bucket begins (UTC)")
    requests: int
    errors: int
    request_rate: float = Field(description="requests per second (of the bucket's elapsed part, for the last one)")
    error_rate: float | None = Field(description="errors / requests; None without requests")
    p95_latency_ms: float | None = Field(description="None without requests")


class RevisionPoints(WireModel):
    revision: int
    role: str = Field(description="candidate or stable")
    points: list[SeriesPoint] = Field(description="oldest first, every bucket (empty ones included)")


class RolloutSeries(WireModel):
    """A rollout's request rate, error rate and p95 latency per revision over time (charts).

    Kept in the engine's memory for each agent's last rollout since the engine started (a
    rollout resumed after a restart starts its series again); at most 240 buckets per revision
    (``bucket_s`` doubles past them)."""

    agent: str
    rollout_id: str
    status: RolloutStatus
    started_at: str
    bucket_s: float
    revisions: list[RevisionPoints]


class RolloutActionRequest(BaseModel):
    actor: str | None = Field(None, max_length=200, description="who asked (shown in the rollout's reason)")
