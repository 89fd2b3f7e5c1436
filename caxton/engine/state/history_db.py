"""A second connection to the engine's database for conversation turns and agent log lines.

The store's own connection commits with ``synchronous=FULL`` (an fsync per
commit, ~0.6 ms here) because it records what the engine serves. History is
written on the message path, so it gets its own connection with
``synchronous=NORMAL`` in WAL mode: a committed turn survives a crash of the
process (kill -9) at ~25 us per commit; a power loss may drop the last
commits. Used by ``caxton.engine.serving.conversations.DurableConversationStore`` and
``caxton.engine.logs.AgentLogs``; the tables come from migration
``0004_history`` (``caxton.engine.state.migrations``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from caxton.engine.state.store import connect, immediate


class HistoryDB:
    """One connection, one lock; ``write`` is one transaction, ``read`` a few statements."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path, synchronous="NORMAL")
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._conn.close()
                self._closed = True
