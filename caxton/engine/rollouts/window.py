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

Engines sharing a PostgreSQL store (``WindowBook.shared``:
``caxton.engine.rollouts.samples``) also count every message to a revision of
an agent with a rollout in flight in that revision's tally, flushed to the
store; a window's ``snapshot`` then adds what the other engines counted since
it began (read at most every ``REFRESH_S`` seconds), so the analysis sees
every replica's messages. Without sharing (SQLite) a window is only this engine's.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from caxton.engine.rollouts.histogram import Counts, latency_index
from caxton.engine.serving.runtime import ServingRuntime

if TYPE_CHECKING:
    from caxton.engine.rollouts.samples import Shared
    from caxton.engine.rollouts.series import Series

log = logging.getLogger(__name__)

#: Seconds a window reuses the other engines' counts it read (they are flushed every 0.5 s).
REFRESH_S = 0.25


@dataclass(frozen=True)
class Snapshot:
    """What one window holds at one moment."""

    requests: int
    errors: int
    compared: int
    divergent: int
    p95_ms: float | None

    @classmethod
    def of(cls, counts: Counts) -> Snapshot:
        return cls(counts.requests, counts.errors, counts.compared, counts.divergent, counts.p95_ms())

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def divergence_rate(self) -> float | None:
        return self.divergent / self.compared if self.compared else None


class Recorder(Protocol):
    """Where the message path counts one revision's messages: a ``Window``, or a shared ``Tally``."""

    def record(self, seconds: float, ok: bool) -> None: ...

    def compare(self, same: bool) -> None: ...


class Window:
    """Counters and a latency histogram of one revision over one step. Thread-safe."""

    def __init__(self, agent_id: str = "", revision: int = 0, shared: Shared | None = None) -> None:
        self.agent_id = agent_id
        self.revision = revision
        self._shared = shared
        self._lock = threading.Lock()
        #: The revision's series over the whole rollout (not reset by ``clear``), when it has one.
        self.series: Series | None = None
        self._counts = Counts()
        #: Wall time the window began (its last ``clear``): the other engines' counts are read from then on.
        self.since = self._now()
        self._elsewhere_lock = threading.Lock()
        self._elsewhere: tuple[float, float, Counts] | None = None  # (since, read at (monotonic), counts)

    def _now(self) -> float:
        return self._shared.clock() if self._shared is not None else time.time()

    def record(self, seconds: float, ok: bool) -> None:
        """Count one answered (``ok``) or failed message that took ``seconds``."""
        index = latency_index(seconds)
        with self._lock:
            self._counts.add(index, ok)
        series = self.series
        if series is not None:
            series.record(index, ok)
        shared = self._shared
        if shared is not None:
            tally = shared.recorder(self.agent_id, self.revision)
            if tally is not None:
                tally.add(index, ok)

    def compare(self, same: bool) -> None:
        """Count one shadow reply compared with the stable revision's reply."""
        with self._lock:
            self._counts.compare(same)
        shared = self._shared
        if shared is not None:
            tally = shared.recorder(self.agent_id, self.revision)
            if tally is not None:
                tally.compare(same)

    def clear(self) -> None:
        with self._lock:
            self._counts = Counts()
            self.since = self._now()

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._shared is None:
                return Snapshot.of(self._counts)
            counts, since = self._counts.copy(), self.since
        others = self._others(since)
        if others is not None:
            counts.merge(others)
        return Snapshot.of(counts)

    def _others(self, since: float) -> Counts | None:
        """The other engines' counts since ``since`` (cached ``REFRESH_S`` s; None without sharing)."""
        shared = self._shared
        if shared is None:
            return None
        with self._elsewhere_lock:
            cached = self._elsewhere
            now = time.monotonic()
            if cached is not None and cached[0] == since and now - cached[1] < REFRESH_S:
                return cached[2]
            try:
                counts = shared.elsewhere(self.agent_id, self.revision, since)
            except Exception as error:  # noqa: BLE001 - the store is unreachable: the last read (or none) serves
                log.warning("could not read the other engines' samples of %s revision %d: %s",
                            self.agent_id, self.revision, error)
                counts = cached[2] if cached is not None and cached[0] == since else Counts()
            self._elsewhere = (since, now, counts)
            return counts


class WindowBook:
    """Which runtimes have a window. Lookups are a plain dict read (the message path)."""

    def __init__(self) -> None:
        self._windows: dict[ServingRuntime, Window] = {}
        #: The samples this engine shares with the others of its store (None: it shares nothing).
        self.shared: Shared | None = None

    def get(self, serving: ServingRuntime) -> Recorder | None:
        """Where a message answered by ``serving`` is counted (None: nowhere)."""
        window = self._windows.get(serving)
        if window is not None:
            return window
        shared = self.shared
        return None if shared is None else shared.recorder(serving.agent_id, serving.revision)

    def watch(self, serving: ServingRuntime) -> Window:
        window = self._windows.get(serving)
        if window is None:
            window = self._windows[serving] = Window(serving.agent_id, serving.revision, self.shared)
        return window

    def forget(self, serving: ServingRuntime) -> None:
        self._windows.pop(serving, None)
