"""Health bookkeeping of one WASM runtime: restart backoff and the circuit breaker.

Pure state machines over an injected clock (no threads, no wasmtime), so the
rules are easy to test. ``caxton.sandbox.runtime`` holds one ``Health`` per
runtime, under its lock.

Rules:
- A counted failure (trap, out_of_fuel, timeout, memory_limit, bad_reply,
  reply_too_large) increments ``consecutive_failures``; a success resets it.
  An agent's own error reply (agent_error) is neutral: the sandbox worked.
- An instance-fatal failure schedules a restart: the first one of a streak is
  immediate, then ``backoff_base_s * 2**(n-1)`` up to ``backoff_max_s``.
- ``failure_threshold`` consecutive failures open the circuit for
  ``cooldown_s``; then one probe is let through (half-open): success closes
  it, failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

CircuitState = Literal["closed", "open", "half-open"]
Outcome = Literal["success", "failure", "neutral"]


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds of the backoff and the circuit breaker."""

    failure_threshold: int = 5
    cooldown_s: float = 30.0
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if min(self.cooldown_s, self.backoff_base_s, self.backoff_max_s) < 0:
            raise ValueError("cool-down and backoff durations must not be negative")


@dataclass
class Health:
    """Counters, restart schedule and circuit state of one runtime."""

    settings: HealthSettings = field(default_factory=HealthSettings)
    clock: Callable[[], float] = time.monotonic
    consecutive_failures: int = 0
    restart_streak: int = 0
    opened_at: float | None = None
    half_open: bool = False  # open, and the one probe is in flight

    @property
    def circuit(self) -> CircuitState:
        if self.half_open:
            return "half-open"
        return "open" if self.opened_at is not None else "closed"

    def retry_after(self) -> float:
        """Seconds until the circuit lets a probe through (0 when closed)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.settings.cooldown_s - self.clock())

    def admit(self) -> bool:
        """Whether a message may enter now; the first one after the cool-down is the probe."""
        if self.opened_at is None:
            return True
        if self.half_open or self.retry_after() > 0:
            return False
        self.half_open = True
        return True

    def record(self, outcome: Outcome) -> None:
        """Account for the end of one admitted message (the probe's decides the circuit)."""
        was_probe = self.half_open
        if outcome == "failure":
            self._failed(was_probe)
        elif outcome == "success":
            self.consecutive_failures = 0
            self.restart_streak = 0
            self._close()
        elif was_probe:
            self._close()

    def restart_delay(self) -> float:
        """Delay before the next restart; advances the restart streak."""
        streak = self.restart_streak
        self.restart_streak += 1
        if streak == 0:
            return 0.0
        delay: float = self.settings.backoff_base_s * 2 ** (streak - 1)
        return min(self.settings.backoff_max_s, delay)

    def _failed(self, was_probe: bool) -> None:
        self.consecutive_failures += 1
        if was_probe or self.consecutive_failures >= self.settings.failure_threshold:
            self.opened_at = self.clock()
            self.half_open = False

    def _close(self) -> None:
        self.opened_at = None
        self.half_open = False
