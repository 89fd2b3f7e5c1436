"""The loop's status in a fixed shape: what it saw, what it applied, what failed, what comes next.

``LoopStatus`` is updated by ``caxton.reconcile.loop`` when a pass starts,
after it, and whenever a refresh sees an agent's SYNC/HEALTH change; it is
sent to the engine by ``caxton.client.reconcile`` as a plain dict (the shape
``caxton reconcile status`` renders and docs/reconcile.md documents).
``state`` is ``applying`` (a pass is planning/submitting), ``waiting``
(rollouts in flight or paused: the loop watches them, it does not wait on
them), ``idle`` (nothing to do until a new revision, a webhook or the
interval), ``error`` (the last pass failed: retried with backoff, or held
until a new revision when retrying cannot help), ``starting`` or ``stopped``.
Times are UTC ISO-8601 strings.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from caxton.reconcile.health import IN_FLIGHT, AgentRow
from caxton.reconcile.passes import SUCCESS, PassOutcome


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@dataclass
class EngineView:
    engine: str
    commit: str | None = None  # the last revision this engine was seen to have
    outcome: str | None = None
    message: str | None = None
    apply_id: str | None = None  # the last apply the loop submitted to it
    agents: list[dict[str, Any]] = field(default_factory=list)  # SYNC/HEALTH rows (health.AgentRow)


@dataclass
class LoopStatus:
    source: str
    kind: str
    branch: str | None
    interval_seconds: float
    engines: list[EngineView]
    loop_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    holder: str = field(default_factory=lambda: f"{socket.gethostname()} pid {os.getpid()}")
    started_at: str | None = field(default_factory=lambda: iso(time.time()))
    state: str = "starting"  # starting, applying, waiting, idle, error, stopped
    last_seen_commit: str | None = None
    last_applied_commit: str | None = None
    last_outcome: str | None = None
    last_message: str | None = None
    last_error: str | None = None
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    last_run_at: str | None = None
    last_success_at: str | None = None
    last_duration_seconds: float | None = None
    retries: int = 0
    held: bool = False  # the last pass cannot succeed by retrying: waiting for a new revision
    in_flight: list[str] = field(default_factory=list)  # ids of submitted applies still progressing
    next_attempt_at: str | None = None
    runs: dict[str, int] = field(default_factory=dict)

    def record(self, outcome: PassOutcome, *, retries: int, now: float) -> None:
        """Take in a finished pass that ended at ``now`` (seconds since the epoch, the loop's clock)."""
        self.last_run_at = iso(now)
        self.last_duration_seconds = round(outcome.duration, 3)
        self.last_outcome, self.last_message = outcome.outcome, outcome.message
        self.runs[outcome.outcome] = self.runs.get(outcome.outcome, 0) + 1
        self.retries = retries
        if outcome.revision is not None and self.kind != "dir":
            self.last_seen_commit = outcome.revision
        elif outcome.commit is not None:
            self.last_seen_commit = outcome.commit
        self.diagnostics = list(outcome.diagnostics)
        if outcome.ok:
            self.last_applied_commit = outcome.commit
            self.last_success_at = iso(now)
            self.last_error = None
        else:
            self.last_error = f"{outcome.outcome}: {outcome.message}"
        self._engines(outcome)
        self.held = not outcome.ok and not outcome.retry
        self.settle()

    def begin(self) -> None:
        """A pass starts now: nothing is scheduled until it ends."""
        self.state, self.next_attempt_at = "applying", None

    def settle(self) -> None:
        """The state between passes: error, waiting (rollouts in flight) or idle."""
        if self.last_outcome is not None and self.last_outcome not in SUCCESS:
            self.state = "error"
        elif self.in_flight or any(row.get("health") in IN_FLIGHT for view in self.engines for row in view.agents):
            self.state = "waiting"
        else:
            self.state = "idle"

    def show_rows(self, engine: str, rows: tuple[AgentRow, ...]) -> tuple[bool, list[AgentRow]]:
        """Take in a refresh of ``engine``'s rows: whether any changed, and those whose SYNC/HEALTH/reason did."""
        fresh = [row.to_dict() for row in rows]
        for view in self.engines:
            if view.engine == engine and view.agents != fresh:
                before = {(r["id"], r["sync"], r["health"], r["reason"]) for r in view.agents}
                view.agents = fresh
                return True, [row for row in rows if (row.id, row.sync, row.health, row.reason) not in before]
        return False, []

    def _engines(self, outcome: PassOutcome) -> None:
        by_url = {view.engine: view for view in self.engines}
        for result in outcome.engines:
            view = by_url.get(result.engine)
            if view is None:
                continue
            view.outcome, view.message = result.outcome, result.message
            view.apply_id = result.apply_id or view.apply_id
            if result.agents:
                view.agents = [row.to_dict() for row in result.agents]
            if result.commit is not None:
                view.commit = result.commit

    def schedule(self, next_at: float | None) -> None:
        self.next_attempt_at = iso(next_at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
