"""The replica thread: follow the store, and lead the rollouts when this engine holds the leadership.

``Replica.start`` (``Engine._start``, PostgreSQL only) runs one daemon thread over a
``StateFeed`` (``caxton.engine.state.feed``): it waits at most ``POLL`` s for a
notification, then compares what it observes (serial, rollouts in flight, requests)
with the last observation; on a difference (or on becoming the leader) it ``sync``s:

1. the leader adopts the rollouts in flight it does not drive yet and carries out the
   other replicas' requests (``caxton.engine.replica.remote``);
2. every replica reconciles its runtimes and routes to the store
   (``caxton.engine.replica.sync``) and notes the rollouts others drive
   (``InFlight.mirrored``);
3. waiters on rollouts (an apply's, a forwarded command's) are woken.

Whatever it observed, it then lets ``orphans`` (``caxton.engine.replica.orphans``) end
the applies of dead engines (at most every second).

A lost connection drops the leadership before anything else happens: the controller
stops ticking (``RolloutController.leads``) and its runs are released; the routes stay
and are mirrored from the new leader. The feed reconnects by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from caxton.engine import processes
from caxton.engine.operations import Operations
from caxton.engine.replica import remote, sync
from caxton.engine.replica.orphans import Orphans
from caxton.engine.rollouts.controller import RolloutController
from caxton.engine.rollouts.model import Rollout
from caxton.engine.state import rollouts as records
from caxton.engine.state.feed import Observed, StateFeed
from caxton.engine.state.schema import STALE_AFTER
from caxton.engine.state.store import Store

log = logging.getLogger(__name__)

#: Seconds between two reads of the store's serial when no notification arrives (the polling fallback).
POLL = 0.5


class Replica:
    """One engine among several on a PostgreSQL store."""

    def __init__(self, url: str, ops: Operations, rollouts: RolloutController, *, poll: float = POLL,
                 orphans: Orphans | None = None) -> None:
        self.ops = ops
        self.orphans = orphans
        self.rollouts = rollouts
        self.poll = poll
        self.feed = StateFeed(url)
        self._leading = False
        self._last: Observed | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: How many times this engine reconciled, and lost the leadership (health, tests, the benchmark).
        self.syncs = 0
        self.lost = 0

    @property
    def leader(self) -> bool:
        return self._leading and self.feed.leader

    def view(self) -> dict[str, Any]:
        """What ``GET /api/v1/health/detailed`` shows under ``replica``."""
        return {"leader": self.leader, "syncs": self.syncs, "leadership_lost": self.lost}

    def start(self) -> None:
        """Observe once (taking the leadership if free), sync, and follow from then on in a thread."""
        rollouts = self.rollouts
        rollouts.leads = lambda: self.leader
        self._step()
        self._thread = threading.Thread(target=self._loop, name="caxton-replica", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following; the leadership goes with the feed's connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self.feed.close()
        self._leading = False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:
                log.exception("replica: following the store failed; retrying")
                self._last = None
                self._stop.wait(self.poll)

    def _step(self) -> None:
        observed = self.feed.observe(self.poll)
        if self._stop.is_set():
            return
        if self.orphans is not None:
            self.orphans.check()
        if self._leading and not self.feed.leader:
            self._leading = False
            self.lost += 1
            log.warning("replica: lost the rollout leadership (connection to the store lost); another engine "
                        "takes over the rollouts")
            remote.release(self.rollouts)
        if observed is None:
            self._last = None
            self._stop.wait(self.poll)  # reconnect at the next step
            return
        became = self.feed.leader and not self._leading
        if became:
            self._leading = True
            log.info("replica: this engine leads the rollouts")
        if became or observed != self._last:
            self._last = observed
            self.sync()

    def _active(self) -> dict[str, Rollout]:
        return {rollout.agent_id: rollout for rollout in records.active(self.ops.store)}

    def sync(self) -> None:
        """Adopt (leader), reconcile, wake the waiters."""
        if self.leader:
            remote.adopt(self.rollouts, self._active())
            remote.act(self.rollouts)
        with self.ops.lock:  # rollouts start, step and end under it: what is read here is current
            active = self._active()
            driven = set(self.rollouts._runs)
            self.rollouts.inflight.mirrored = {agent: r for agent, r in active.items() if agent not in driven}
            sync.reconcile(self.ops, active, driven)
        self.syncs += 1
        with self.rollouts.inflight.finished:
            self.rollouts.inflight.finished.notify_all()


def others_alive(store: Store, engine_id: str) -> bool:
    """Another engine on ``store`` has a fresh heartbeat and was not killed on this host
    (``caxton.engine.state.schema``): then the applies in flight may be its own, not cut short."""
    fresh = time.time() - STALE_AFTER
    return any(row.id != engine_id and row.last_seen >= fresh and not processes.gone(row.host, row.pid)
               for row in store.engines())
