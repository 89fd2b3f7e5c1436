"""Capped exponential backoff with jitter, and the jittered interval (pure).

Used by ``caxton.reconcile.loop`` to schedule the retry of a failed pass and
the next periodic pass; ``random`` is injectable so tests are deterministic.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """``base * 2**(attempt-1)``, capped at ``cap``, then spread by +-``jitter`` (a fraction)."""

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.2
    rng: _random.Random = field(default_factory=_random.Random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
        raw = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        return spread(raw, self.jitter, self.rng)


def spread(seconds: float, jitter: float, rng: _random.Random | None = None) -> float:
    """``seconds`` moved by up to +-``jitter`` of itself (never below zero)."""
    if jitter <= 0 or seconds <= 0:
        return max(seconds, 0.0)
    pick = (rng or _random).uniform(-jitter, jitter)
    return max(seconds * (1.0 + pick), 0.0)
