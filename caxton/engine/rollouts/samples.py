"""Rollout samples shared by the engines of one PostgreSQL store, so a rollout's analysis sees every replica.

Each engine's message path counts the messages to the revisions of agents
with a rollout in flight (whichever engine drives it) in a ``Tally`` per
revision: per second (wall time), requests, errors, shadow comparisons and
the latency histogram of ``caxton.engine.rollouts.histogram``. A background
thread of ``Shared`` writes what was counted to the store every
``FLUSH_EVERY`` seconds (``caxton.engine.state.samples``; the message path
never waits on the database), learns which agents have a rollout in flight,
and deletes rows older than ``KEEP_S``. The engine that drives a rollout adds
to its own analysis window (``caxton.engine.rollouts.window``) the rows of
every *other* engine since the window began (``elsewhere``): its own
messages are already in the window, exactly and at once; the others' arrive
within about a second (an engine starts counting within ``FLUSH_EVERY`` of a
rollout's start, flushes every ``FLUSH_EVERY``, and a window reads them at most
every ``caxton.engine.rollouts.window.REFRESH_S``).

Only engines on PostgreSQL share (``caxton.engine.sharing`` builds a
``Shared``); on SQLite there is one engine and nothing here runs.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from caxton.engine.rollouts.histogram import Counts, latency_index
from caxton.engine.state import samples as stored
from caxton.engine.state.history_db import HistoryDB

log = logging.getLogger(__name__)

#: Seconds between two flushes of an engine's samples to the store (and reads of which agents roll out).
FLUSH_EVERY = 0.5
#: Seconds of samples kept in the store (a window older than this sees only its newest part).
KEEP_S = 900.0
#: Seconds between two deletions of old rows.
PRUNE_EVERY = 60.0


class Tally:
    """One revision's messages per wall-clock second since the last flush. Thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seconds: dict[int, Counts] = {}

    def _counts(self) -> Counts:  # under self._lock
        second = int(self._clock())
        counts = self._seconds.get(second)
        if counts is None:
            counts = self._seconds[second] = Counts()
        return counts

    def add(self, index: int, ok: bool) -> None:
        """One message of latency bucket ``index``, now."""
        with self._lock:
            self._counts().add(index, ok)

    def record(self, seconds: float, ok: bool) -> None:
        """One answered (``ok``) or failed message that took ``seconds``, now."""
        self.add(latency_index(seconds), ok)

    def compare(self, same: bool) -> None:
        with self._lock:
            self._counts().compare(same)

    def take(self) -> dict[int, Counts]:
        """What was counted since the last call, by second."""
        with self._lock:
            taken, self._seconds = self._seconds, {}
        return taken

    def put_back(self, seconds: dict[int, Counts], *, oldest: int) -> None:
        """Counts a failed flush took (those of seconds before ``oldest`` are dropped)."""
        with self._lock:
            for second, counts in seconds.items():
                if second >= oldest:
                    self._seconds.setdefault(second, Counts()).merge(counts)


class Shared:
    """This engine's tallies, their flushes to the store, and the other engines' rows read back."""

    def __init__(self, db: HistoryDB, engine_id: str, clock: Callable[[], float], *,
                 every: float = FLUSH_EVERY, keep: float = KEEP_S) -> None:
        self.db = db
        self.engine_id = engine_id
        #: Wall time (unix seconds), the same on every engine: the rows' seconds.
        self.clock = clock
        self.every = every
        self.keep = keep
        #: The agents with a rollout in flight on any engine, as of the last flush.
        self.rolling_out: frozenset[str] = frozenset()
        self._tallies: dict[tuple[str, int], Tally] = {}
        self._pruned_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    # --- the message path ---------------------------------------------------------------
    def recorder(self, agent_id: str, revision: int) -> Tally | None:
        """The tally of ``revision`` of ``agent_id`` while the agent has a rollout in flight (else None)."""
        if agent_id not in self.rolling_out:
            return None
        key = (agent_id, revision)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies.setdefault(key, Tally(self.clock))
        return tally

    # --- the analysis ---------------------------------------------------------------------
    def elsewhere(self, agent_id: str, revision: int, since: float) -> Counts:
        """What every other engine counted for ``revision`` from the first whole second after ``since``."""
        with self.db.read() as conn:
            rows = stored.since(conn, agent_id, revision, math.ceil(since), besides=self.engine_id)
        total = Counts()
        for row in rows:
            total.merge(Counts(row.requests, row.errors, row.compared, row.divergent, row.latencies))
        return total

    # --- the flusher ----------------------------------------------------------------------
    def start(self) -> None:
        """Learn which agents roll out now, then flush every ``every`` seconds in a daemon thread."""
        self._flush_logged()
        self._thread = threading.Thread(target=self._run, name="caxton-rollout-samples", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after one last flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        self._flush_logged()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception as error:  # noqa: BLE001 - the store is unreachable: kept and retried at the next flush
            if not self._failing:
                log.warning("could not write this engine's rollout samples to the store (retrying every %gs): %s",
                            self.every, error)
            self._failing = True
        else:
            if self._failing:
                log.info("rollout samples are written to the store again")
            self._failing = False

    def flush(self) -> int:
        """Write what was counted since the last flush; refresh ``rolling_out``; prune. Returns the rows written."""
        taken = [(key, tally, tally.take()) for key, tally in list(self._tallies.items())]
        rows = [stored.SampleRow(agent, revision, second, c.requests, c.errors, c.compared, c.divergent, c.latencies)
                for (agent, revision), _, seconds in taken for second, c in sorted(seconds.items())]
        now = self.clock()
        try:
            with self.db.write() as conn:
                if rows:
                    stored.add(conn, self.engine_id, rows)
                if now - self._pruned_at >= PRUNE_EVERY:
                    stored.prune(conn, int(now - self.keep))
                    self._pruned_at = now
                active = stored.rolling_out(conn)
        except BaseException:
            for _, tally, seconds in taken:
                tally.put_back(seconds, oldest=int(now - self.keep))
            raise
        self.rolling_out = frozenset(active)
        for key in [key for key in self._tallies if key[0] not in active]:
            del self._tallies[key]  # a message counted just now into one is lost: its rollout has ended
        return len(rows)
