"""The latency histogram of the rollouts' windows and series: log buckets 5 % wide from 0.01 ms.

``latency_index`` says which bucket a latency falls in; ``quantile`` reads a quantile
back from a histogram's counts (the upper edge of its bucket). Shared by
``caxton.engine.rollouts.window`` (a step's analysis) and
``caxton.engine.rollouts.series`` (a rollout's charts), so both show the same p95.
"""

from __future__ import annotations

import math

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
