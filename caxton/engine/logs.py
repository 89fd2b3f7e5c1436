"""Recent log lines per agent (``GET /api/v1/agents/{name}/logs``), kept in the engine's database.

Runtimes log through a sink from ``AgentLogs.sink`` (the sandbox's
``caxton.log`` host function, the config runtime); the engine adds lines for
deploys, failures and restarts. Until ``attach`` (and in tests without an
engine) lines live in a bounded ring per agent. Once attached to the
database (``caxton.engine.state.history_db``), lines are buffered and written by a
flusher every ``flush_interval`` seconds (0.25 s), at ``tail`` and at
``detach`` (engine stop): a kill -9 loses at most the lines of the last
interval. While the database does not answer the lines wait (at most
``PENDING_MAX``, the oldest dropped and counted in one warning) and are written
once it is back. The database keeps the last ``max_lines`` lines per agent
(``logging.agent_log_lines``) and none older than ``retention``
(``logging.agent_log_retention``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from caxton.engine.state import agent_logs as stored
from caxton.engine.state.history_db import HistoryDB
from caxton.engine.state.records import utcnow
from caxton.errors import StoreUnavailable

MAX_LINES = 1000
RETENTION = 7 * 86400.0
FLUSH_INTERVAL = 0.25
#: Lines kept for the next flush while the database does not answer (the oldest dropped, then counted in a warning).
PENDING_MAX = 10_000
_LEVELS = {0: "debug", 1: "info", 2: "warning", 3: "error"}
_logger = logging.getLogger("caxton.engine.agents")

LogSink = Callable[..., None]


def level_name(level: Any) -> str:
    if isinstance(level, int):
        return _LEVELS.get(level, "info")
    text = str(level).lower()
    return text if text in _LEVELS.values() else "info"


class AgentLogs:
    """Log lines per agent id: a ring in memory, or the database once attached."""

    def __init__(self, max_lines: int = MAX_LINES, *, retention: float = RETENTION,
                 flush_interval: float = FLUSH_INTERVAL, clock: Callable[[], float] = time.time) -> None:
        self._max = max_lines
        self._retention = retention
        self._interval = flush_interval
        self._clock = clock
        self._lines: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._db: HistoryDB | None = None
        self._pending: list[tuple[str, dict[str, Any], float]] = []
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._pruned_at = 0.0
        #: Lines dropped since the last successful flush (more than ``PENDING_MAX`` waited).
        self.dropped = 0

    def attach(self, db: HistoryDB, *, max_lines: int | None = None, retention: float | None = None,
               background: bool = True) -> None:
        """Write lines to ``db`` from now on (those in memory first); ``background`` starts the flusher."""
        with self._lock:
            self._max = max_lines or self._max
            self._retention = retention or self._retention
            self._pending = [(agent, line, self._clock()) for agent, lines in self._lines.items() for line in lines]
            self._lines.clear()
            self._db = db
        self.flush()
        if background:
            self._stop.clear()
            self._flusher = threading.Thread(target=self._run, name="caxton-agent-logs", daemon=True)
            self._flusher.start()

    def detach(self) -> None:
        """Stop the flusher and write what is pending (engine stop, before the database closes)."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        try:
            self.flush()
        except StoreUnavailable as error:  # the engine stops anyway
            with self._lock:
                lost, self._pending = len(self._pending), []
            _logger.warning("%d agent log lines were not written: %s", lost, error.message)
        with self._lock:
            self._db = None

    def add(self, agent_id: str, level: Any, message: str, *, revision: int | None = None) -> None:
        line = {"at": utcnow(), "level": level_name(level), "revision": revision, "message": message}
        with self._lock:
            if self._db is not None:
                self._pending.append((agent_id, line, self._clock()))
            else:
                self._lines.setdefault(agent_id, deque(maxlen=self._max)).append(line)
        _logger.log(logging.WARNING if line["level"] in ("warning", "error") else logging.DEBUG,
                    "%s r%s: %s", agent_id, revision, message, extra={"agent": agent_id, "revision": revision})

    def sink(self, agent_id: str, revision: int) -> LogSink:
        """A ``log(level, message)`` callable for one runtime."""

        def log(level: Any, message: Any = "", *_: Any) -> None:
            self.add(agent_id, level, str(message), revision=revision)

        return log

    def flush(self) -> None:
        """Write the pending lines in one transaction and trim the agents they belong to."""
        with self._flush_lock:
            with self._lock:
                db, pending, self._pending = self._db, self._pending, []
            if db is None or not pending:
                return
            try:
                self._write(db, pending)
            except BaseException:
                with self._lock:  # keep them for the next flush (the newest PENDING_MAX while it fails)
                    self._pending[:0] = pending
                    dropped = len(self._pending) - PENDING_MAX
                    if dropped > 0:
                        del self._pending[:dropped]
                        self.dropped += dropped
                raise
            if self.dropped:
                _logger.warning("%d agent log lines were dropped while the database did not answer", self.dropped)
                self.dropped = 0

    def _write(self, db: HistoryDB, pending: list[tuple[str, dict[str, Any], float]]) -> None:
        now = self._clock()
        with db.write() as conn:
            stored.add(conn, pending)
            for agent in {agent for agent, _, _ in pending}:
                stored.trim(conn, agent, self._max)
            if now - self._pruned_at >= min(60.0, self._retention):
                self._pruned_at = now
                stored.prune(conn, now - self._retention)

    def tail(self, agent_id: str, limit: int = 100) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        self.flush()
        with self._lock:
            db = self._db
            if db is None:
                return list(self._lines.get(agent_id, ()))[-limit:]
        with db.read() as conn:
            return stored.tail(conn, agent_id, self._clock() - self._retention, min(limit, self._max))

    def clear(self, agent_id: str) -> None:
        self.flush()
        with self._lock:
            self._lines.pop(agent_id, None)
            db = self._db
        if db is not None:
            with db.write() as conn:
                stored.delete(conn, agent_id)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except StoreUnavailable:  # kept for the next try; the outage is logged once by the connections
                pass
            except Exception:  # a locked or closing database: keep the lines for the next try
                _logger.exception("writing agent log lines failed")
