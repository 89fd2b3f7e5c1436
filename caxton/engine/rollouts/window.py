"""Per-revision metrics windows: the data a rollout's analysis is computed from.

A ``Window`` counts one revision's messages, failures and latencies (a
log-bucketed histogram, 5 % resolution: ``caxton.engine.rollouts.histogram``) and, for a shadow revision, how many
replies were compared with the stable one's and how many differed. The
engine's message path (``caxton.engine.core``) records into the window of
the runtime that answered, when one is registered in the ``WindowBook``;
the rollout controller registers windows for the revisions it watches and
resets them at each step, so every analysis sees exactly one step's data.
A window may also feed its revision's ``series`` (``caxton.engine.rollouts.series``),
which is never reset: the rollout's charts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caxton.engine.rollouts.histogram import latency_index, quantile
from caxton.engine.serving.runtime import ServingRuntime

if TYPE_CHECKING:
    from caxton.engine.rollouts.series import Series


@dataclass(frozen=True)
class Snapshot:
    """What one window holds at one moment."""

    requests: int
    errors: int
    compared: int
    divergent: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def divergence_rate(self) -> float | None:
        return self.divergent / self.compared if self.compared else None


class Window:
    """Counters and a latency histogram of one revision over one step. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The revision's series over the whole rollout (not reset by ``clear``), when it has one.
        self.series: Series | None = None
        self._reset()

    def _reset(self) -> None:
        self.requests = 0
        self.errors = 0
        self.compared = 0
        self.divergent = 0
        self.buckets: dict[int, int] = {}

    def record(self, seconds: float, ok: bool) -> None:
        """Count one answered (``ok``) or failed message that took ``seconds``."""
        index = latency_index(seconds)
        with self._lock:
            self.requests += 1
            if not ok:
                self.errors += 1
            self.buckets[index] = self.buckets.get(index, 0) + 1
        series = self.series
        if series is not None:
            series.record(index, ok)

    def compare(self, same: bool) -> None:
        """Count one shadow reply compared with the stable revision's reply."""
        with self._lock:
            self.compared += 1
            if not same:
                self.divergent += 1

    def clear(self) -> None:
        with self._lock:
            self._reset()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.requests, self.errors, self.compared, self.divergent,
                            quantile(self.buckets, self.requests, 0.95))


class WindowBook:
    """Which runtimes have a window. Lookups are a plain dict read (the message path)."""

    def __init__(self) -> None:
        self._windows: dict[ServingRuntime, Window] = {}

    def get(self, serving: ServingRuntime) -> Window | None:
        return self._windows.get(serving)

    def watch(self, serving: ServingRuntime) -> Window:
        window = self._windows.get(serving)
        if window is None:
            window = self._windows[serving] = Window()
        return window

    def forget(self, serving: ServingRuntime) -> None:
        self._windows.pop(serving, None)
