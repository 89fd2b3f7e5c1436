"""The latency histogram of the rollouts' windows and series: log buckets 5 % wide from 0.01 ms.

``latency_index`` says which bucket a latency falls in; ``quantile`` reads a quantile
back from a histogram's counts (the upper edge of its bucket). ``Counts`` is a
histogram with the message counters around it, mergeable. Shared by
``caxton.engine.rollouts.window`` (a step's analysis), ``caxton.engine.rollouts.series``
(a rollout's charts) and ``caxton.engine.rollouts.samples`` (every engine's counts
in the store), so all show the same p95.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_BASE_MS = 0.01
_RATIO = 1.05
_LOG_RATIO = math.log(_RATIO)


def latency_index(seconds: float) -> int:
    """The histogram bucket of a latency."""
    ms = seconds * 1000.0
    return int(math.log(ms / _BASE_MS) / _LOG_RATIO) + 1 if ms > _BASE_MS else 0


def quantile(buckets: dict[int, int], total: int, q: float) -> float | None:
    """The upper edge (ms) of the bucket holding the ``q`` quantile; None without data."""
    if total == 0:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return round(_BASE_MS * _RATIO ** index, 3)
    return None


@dataclass
class Counts:
    """Messages, failures, shadow comparisons and a latency histogram (``latencies``: bucket index -> count)."""

    requests: int = 0
    errors: int = 0
    compared: int = 0
    divergent: int = 0
    latencies: dict[int, int] = field(default_factory=dict)

    def add(self, index: int, ok: bool) -> None:
        """One message of latency bucket ``index``."""
        self.requests += 1
        if not ok:
            self.errors += 1
        self.latencies[index] = self.latencies.get(index, 0) + 1

    def compare(self, same: bool) -> None:
        """One shadow reply compared with the stable revision's."""
        self.compared += 1
        if not same:
            self.divergent += 1

    def merge(self, other: Counts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.compared += other.compared
        self.divergent += other.divergent
        for index, count in other.latencies.items():
            self.latencies[index] = self.latencies.get(index, 0) + count

    def copy(self) -> Counts:
        return Counts(self.requests, self.errors, self.compared, self.divergent, dict(self.latencies))

    def p95_ms(self) -> float | None:
        return quantile(self.latencies, self.requests, 0.95)
