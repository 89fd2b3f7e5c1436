"""A second connection to the engine's database for conversation turns and agent log lines.

On SQLite the store's own connection commits with ``synchronous=FULL`` (an
fsync per commit, ~0.6 ms here) because it records what the engine serves.
History is written on the message path, so it gets its own connection with
``synchronous=NORMAL`` in WAL mode: a committed turn survives a crash of the
process (kill -9) at ~25 us per commit; a power loss may drop the last
commits. On PostgreSQL it is a second pool whose write transactions do not
take the store's write lock (history rows are independent of the serial)
and whose commits do not wait for the WAL flush (``synchronous_commit=off``:
the same trade, measured in docs/performance.md). While a PostgreSQL server is
down its calls raise ``StoreUnavailable`` (``pg_connections``), and work again
once it is back.
Used by ``caxton.engine.serving.conversations.DurableConversationStore`` and
``caxton.engine.logs.AgentLogs``; the tables come from migration
``0004_history`` (``caxton.engine.state.migrations``, ``migrations_pg``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from caxton.engine.state.db import Conn, Database, Dialect, PostgresDatabase
from caxton.engine.state.store import Store


class HistoryDB:
    """One database handle; ``write`` is one transaction, ``read`` a few statements."""

    def __init__(self, store: Store) -> None:
        self.location = store.location
        self._store = store
        self._db: Database = store.sibling(synchronous="NORMAL")
        #: ``postgres``: other engines may share the database (``caxton.engine.sharing``).
        self.dialect: Dialect = self._db.dialect
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def write(self) -> Iterator[Conn]:
        with self._lock, self._db.write() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Conn]:
        with self._lock, self._db.read() as conn:
            yield conn

    def ensure_available(self) -> None:
        """Nothing while the database answers; ``StoreUnavailable`` while it (or the store's own connections:
        the same server) is known not to, after asking it again."""
        if isinstance(self._db, PostgresDatabase) and (self._db.outage or self._store.outage) is not None:
            with self.read():
                pass
    @contextmanager
    def autocommit(self) -> Iterator[Conn]:
        """A connection each statement of which commits by itself (PostgreSQL: one round trip for a
        one-statement write; SQLite: one write transaction)."""
        if self.dialect != "postgres":
            with self.write() as conn:
                yield conn
            return
        with self._lock, self._db.read() as conn:  # PostgreSQL's reads are pooled connections in autocommit
            yield conn

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._db.close()
                self._closed = True
