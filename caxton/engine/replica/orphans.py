"""Applies whose engine died: a live engine on a PostgreSQL store ends them as ``interrupted``.

Every engine among several (``Replica``'s thread, every ``CHECK_EVERY`` s) looks for
unfinished applies (``running``, ``progressing``) that another engine runs (the record's
``engine_id``) and takes that engine for dead when

- its heartbeat row is gone (removed when an engine stops), or
- it ran on this host and its process is gone (``caxton.engine.processes``: a kill -9
  here is seen at once), or
- its heartbeat (``engines.last_seen``, written every 10 s) has not changed for
  ``stale_after`` s (``STALE_AFTER``, 30 s) as watched by this engine. Only time this
  engine spent reading the store counts: after an outage of the database (when every
  heartbeat is old) or its own start, it watches afresh, so a live engine is never
  taken for dead because the database was away, nor because of another host's clock.

Such an apply is ended by ``ApplyRunner.interrupt``: marked ``interrupted`` in one write
that only an unfinished record takes (of several engines finding it, one does it), with a
reason naming the dead engine and what landed, and the apply lock its holder kept is freed.
Any engine may do it: no leadership is needed. On SQLite (one engine) an engine's start does
it (``ApplyRunner.recover``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from caxton.engine import processes
from caxton.engine.applies import ApplyRunner
from caxton.engine.state import applies as records
from caxton.engine.state.schema import STALE_AFTER, EngineRow
from caxton.engine.state.store import Store
from caxton.errors import StoreUnavailable

log = logging.getLogger(__name__)

#: Seconds between two looks for applies of dead engines.
CHECK_EVERY = 1.0


class Orphans:
    """Finds the unfinished applies of dead engines and ends them (``check``, called often)."""

    def __init__(self, runner: ApplyRunner, store: Store, engine_id: str, *, stale_after: float = STALE_AFTER,
                 every: float = CHECK_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.runner, self.store, self.engine_id = runner, store, engine_id
        self.stale_after, self.every, self.clock = stale_after, every, clock
        #: engine id -> (its last_seen as last read, when this engine first read that value: ``clock``)
        self._watched: dict[str, tuple[float, float]] = {}
        self._next = 0.0

    def check(self) -> list[str]:
        """End the unfinished applies of dead engines (at most every ``every`` s); return their ids."""
        now = self.clock()
        if now < self._next:
            return []
        self._next = now + self.every
        try:
            return self._check(now)
        except StoreUnavailable:
            self._watched.clear()  # the heartbeats could not be written meanwhile: watch afresh
            return []
        except Exception:
            log.exception("looking for applies of dead engines failed; trying again in %.0fs", self.every)
            return []

    def _check(self, now: float) -> list[str]:
        foreign = [r for r in records.unfinished(self.store) if r.engine_id and r.engine_id != self.engine_id]
        if not foreign:
            self._watched.clear()
            return []
        engines = {row.id: row for row in self.store.engines()}
        self._watch(engines, now)
        ended = []
        for record in foreign:
            assert record.engine_id is not None
            why = self.dead(record.engine_id, engines.get(record.engine_id), now)
            if why is not None and self.runner.interrupt(record, why):
                ended.append(record.id)
        return ended

    def _watch(self, engines: dict[str, EngineRow], now: float) -> None:
        watched = {}
        for ident, row in engines.items():
            seen = self._watched.get(ident)
            watched[ident] = seen if seen is not None and seen[0] == row.last_seen else (row.last_seen, now)
        self._watched = watched

    def dead(self, engine_id: str, row: EngineRow | None, now: float) -> str | None:
        """Why the engine ``engine_id`` (its heartbeat row, if any) is taken for dead; None while it may live."""
        if row is None:
            return f"the engine running it ({engine_id}) is gone: it has no heartbeat row (it stopped)"
        name = f"the engine running it (caxton {row.caxton_version} on {row.host}, pid {row.pid})"
        last = f"last heartbeat {_iso(row.last_seen)}"
        if processes.gone(row.host, row.pid):
            return f"{name} died: its process no longer exists ({last})"
        silent = now - self._watched.get(engine_id, (row.last_seen, now))[1]
        if silent >= self.stale_after:
            return f"{name} stopped answering: no heartbeat for {silent:.0f}s ({last})"
        return None


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
