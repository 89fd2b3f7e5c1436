"""Time series of a rollout, for charts: per revision and time bucket, requests, errors and p95 latency.

The analysis windows (``caxton.engine.rollouts.window``) start afresh at every
step; a ``Series`` keeps what the same messages showed over the whole rollout:
each ``Window`` of a rollout's revision also records into its ``Series``, in
buckets of ``BUCKET_S`` seconds of the rollout's clock (the same log-bucketed
latency histogram as the windows, so the p95 is the analysis' p95). Their count
is bounded: past ``MAX_BUCKETS`` the width doubles and neighbours merge. A
``RolloutSeries`` is a rollout's series of its candidate and stable revisions,
kept in memory by ``caxton.engine.rollouts.inflight.InFlight`` (the last one per
agent, also after it ended; an engine restart starts them again) and shown by
``GET /api/v1/rollouts/{agent}/series`` (``caxton.spec.api.RolloutSeries``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from caxton.clock import Clock
from caxton.engine.rollouts.histogram import Counts, quantile

#: Seconds per bucket at first.
BUCKET_S = 5.0
#: Buckets kept at most per revision (then twice as wide).
MAX_BUCKETS = 240


class Series:
    """One revision's buckets over one rollout. Thread-safe (the message path records from any thread)."""

    def __init__(self, clock: Clock, began: float, *, width: float = BUCKET_S, limit: int = MAX_BUCKETS) -> None:
        self.clock = clock
        self.began = began
        self.width = width
        self.limit = limit
        self._buckets: dict[int, Counts] = {}
        self._lock = threading.Lock()

    def record(self, latency_index: int, ok: bool) -> None:
        """Count one message (its latency's ``caxton.engine.rollouts.histogram.latency_index``) now."""
        elapsed = max(0.0, self.clock.monotonic() - self.began)
        with self._lock:
            while elapsed >= self.width * self.limit:
                self._widen()
            self._buckets.setdefault(int(elapsed // self.width), Counts()).add(latency_index, ok)

    def _widen(self) -> None:
        merged: dict[int, Counts] = {}
        for index, bucket in self._buckets.items():
            merged.setdefault(index // 2, Counts()).merge(bucket)
        self._buckets = merged
        self.width *= 2

    def points(self, until: float, started_at: datetime, width: float) -> list[dict[str, Any]]:
        """Every bucket of ``width`` s (a multiple of this series' own) from the start to ``until``
        (monotonic), empty ones included, as the wire's points."""
        span = max(0.0, until - self.began)
        buckets: dict[int, Counts] = {}
        with self._lock:
            for index, bucket in self._buckets.items():
                buckets.setdefault(int(index * self.width // width), Counts()).merge(bucket)
        out: list[dict[str, Any]] = []
        for index in range(int(span // width) + 1):
            bucket = buckets.get(index, Counts())
            start = index * width
            seconds = max(min(width, span - start), 1e-3)  # the last bucket: only its elapsed part
            out.append({
                "t_s": round(start, 3),
                "at": (started_at + timedelta(seconds=start)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "requests": bucket.requests, "errors": bucket.errors,
                "request_rate": round(bucket.requests / seconds, 3),
                "error_rate": round(bucket.errors / bucket.requests, 6) if bucket.requests else None,
                "p95_latency_ms": quantile(bucket.latencies, bucket.requests, 0.95),
            })
        return out


@dataclass
class RolloutSeries:
    """The series of one rollout's revisions (``role``: candidate or stable)."""

    rollout_id: str
    agent: str
    clock: Clock
    began: float
    started_at: datetime
    revisions: dict[int, tuple[str, Series]] = field(default_factory=dict)
    ended: float | None = None
    #: The rollout's final status once it ended.
    status: str | None = None

    @classmethod
    def start(cls, rollout_id: str, agent: str, clock: Clock) -> RolloutSeries:
        return cls(rollout_id, agent, clock, clock.monotonic(), datetime.fromtimestamp(clock.time(), UTC))

    def of(self, revision: int, role: str) -> Series:
        """The series of ``revision`` (made at the first call)."""
        if revision not in self.revisions:
            self.revisions[revision] = (role, Series(self.clock, self.began))
        return self.revisions[revision][1]

    def end(self, status: str) -> None:
        if self.ended is None:
            self.ended, self.status = self.clock.monotonic(), status

    def view(self, status: str) -> dict[str, Any]:
        """The wire's ``RolloutSeries`` (up to now, or to the rollout's end), every revision in the same buckets."""
        until = self.ended if self.ended is not None else self.clock.monotonic()
        series = [(revision, role, s) for revision, (role, s) in sorted(self.revisions.items())]
        width = max((s.width for _, _, s in series), default=BUCKET_S)
        while until - self.began >= width * MAX_BUCKETS:
            width *= 2
        return {
            "agent": self.agent, "rollout_id": self.rollout_id, "status": status,
            "started_at": self.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "bucket_s": width,
            "revisions": [{"revision": revision, "role": role, "points": s.points(until, self.started_at, width)}
                          for revision, role, s in series],
        }
