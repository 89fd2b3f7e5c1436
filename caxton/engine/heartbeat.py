"""This engine's heartbeat in the store: it tells newer engines on the same database that its schema is in use.

``Heartbeat.start`` registers the engine (``Store.register_engine``, refused if a
newer engine migrated the schema meanwhile) and refreshes its row every
``HEARTBEAT_INTERVAL`` seconds from a daemon thread; ``stop`` deletes the row.
A failed heartbeat is logged and retried at the next interval (quietly while
the database is down: ``StoreUnavailable``, whose outage is logged once). Why: ``caxton.engine.state.schema``.
"""

from __future__ import annotations

import logging
import threading

from caxton.engine.state.schema import HEARTBEAT_INTERVAL
from caxton.engine.state.store import Store
from caxton.errors import StoreUnavailable

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, store: Store, interval: float = HEARTBEAT_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self.engine_id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self.engine_id = self.store.register_engine()
        self._thread = threading.Thread(target=self._run, name="caxton-heartbeat", daemon=True)
        self._thread.start()
        return self.engine_id

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.engine_id is not None:
                    self.store.heartbeat(self.engine_id)
            except StoreUnavailable as error:  # the outage is logged once by the store's connections
                log.debug("heartbeat skipped: %s", error.message)
            except Exception as error:  # noqa: BLE001 - retried at the next interval
                log.warning("heartbeat to the store failed (retrying in %.0fs): %s", self.interval, error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        if self.engine_id is not None:
            try:
                self.store.forget_engine(self.engine_id)
            except Exception as error:  # noqa: BLE001 - it is forgotten anyway once stale
                log.warning("could not remove this engine's heartbeat row: %s", error)
            self.engine_id = None
