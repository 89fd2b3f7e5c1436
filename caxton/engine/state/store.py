"""The engine's durable state: SQLite in WAL mode under the data directory, or PostgreSQL (``store.url``).

Owns the tables of ``caxton.engine.state.migrations`` (``migrations_pg`` on
PostgreSQL): agents, revisions (spec JSON and WASM modules stored
content-addressed by sha256 in ``blobs``, the last N kept per agent), the
append-only events, and the state serial. Every state change goes through one
``Store.transaction()``: a single writer (across processes too, see
``caxton.engine.state.db``), one transaction, and the serial bumped exactly
once inside it (the writes themselves: ``caxton.engine.state.transaction``;
the rows: ``caxton.engine.state.records``). Called by ``caxton.engine.operations``
(writes) and the ``Engine``'s read models (``caxton.engine.reads``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from caxton.engine.state import schema
from caxton.engine.state.db import (
    Conn,
    Database,
    Dialect,
    PostgresDatabase,
    SqliteDatabase,
    StoreError,
    open_postgres,
    open_sqlite,
)
from caxton.engine.state.feed import CHANNEL
from caxton.engine.state.migrations import MIGRATIONS, MIGRATIONS_TABLE
from caxton.engine.state.migrations_pg import MIGRATIONS as PG_MIGRATIONS
from caxton.engine.state.migrations_pg import MIGRATIONS_TABLE as PG_MIGRATIONS_TABLE
from caxton.engine.state.records import (
    REVISION_COLUMNS,
    AgentRow,
    EventRow,
    RevisionRow,
    agent_from_row,
    event_from_row,
    revision_from_row,
    utcnow,
)
from caxton.engine.state.schema import Migrations
from caxton.engine.state.transaction import Transaction
from caxton.errors import NotFound
from caxton.spec.identity import closest

DB_NAME = "engine.db"
log = logging.getLogger(__name__)


class Store:
    """The engine's state on one ``Database`` (SQLite by default, PostgreSQL with ``store.url``), one writer at a time."""

    def __init__(self, db: Database, path: Path | None, *, migrations: Migrations | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._lock = threading.RLock()
        #: The SQLite file (None on PostgreSQL: nothing of the state is local).
        self.path = path
        postgres = db.dialect == "postgres"
        #: The migrations this code knows (a newer engine knows more), for this backend.
        self._scripts: Migrations = migrations if migrations is not None else (
            PG_MIGRATIONS if postgres else MIGRATIONS)
        self._migrations_table = PG_MIGRATIONS_TABLE if postgres else MIGRATIONS_TABLE
        #: Wall time of heartbeats and of the guard against older engines (tests: simulated).
        self.clock = clock
        #: Called with the events of each committed transaction, in commit order, still under the
        #: store's lock (so calls never interleave): the live event stream (``caxton.engine.stream``).
        #: It must be quick and must not touch the store.
        self.committed: Callable[[list[EventRow]], None] | None = None

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    @property
    def location(self) -> str:
        """Where the state is, safe to show (a path, or a URL without its password)."""
        return self._db.location

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None, *, migrations: Migrations | None = None,
             clock: Callable[[], float] = time.time) -> Store:
        """Open (creating it if needed) the database in ``data_dir``, or at ``url`` (PostgreSQL), and migrate it.

        ``migrations`` replaces the list this code knows for the backend (tests: an older or newer engine).
        """
        if url:
            store = cls(open_postgres(url, serialize_writes=True), None, migrations=migrations, clock=clock)
        else:
            db = open_sqlite(data_dir, DB_NAME)
            store = cls(db, db.path, migrations=migrations, clock=clock)
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def outage(self) -> dict[str, Any] | None:
        """Since when and why the PostgreSQL server does not answer (None while it does, and on SQLite)."""
        return self._db.outage if isinstance(self._db, PostgresDatabase) else None

    def sibling(self, *, synchronous: str = "NORMAL") -> Database:
        """A second connection to the same database for what the message path writes (``history_db``)."""
        if isinstance(self._db, PostgresDatabase):
            return open_postgres(self._db.url, serialize_writes=False, synchronous_commit=synchronous == "FULL",
                                 name="caxton-history")
        assert self.path is not None
        return SqliteDatabase(self.path, synchronous=synchronous)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- schema (caxton.engine.state.schema) ---------------------------------------
    def migrate(self) -> list[str]:
        """Apply pending migrations (refused when the schema is newer, or an older engine uses it); return them."""
        with self._lock:
            return schema.migrate(self._db, self._scripts, self._migrations_table, now=self.clock, utcnow=utcnow)

    def register_engine(self) -> str:
        """Record this engine as using the schema (a heartbeat row); return its id."""
        with self._lock:
            return schema.register(self._db, self._scripts, now=self.clock(), started_at=utcnow())

    def heartbeat(self, engine_id: str) -> None:
        with self._lock:
            schema.heartbeat(self._db, engine_id, self.clock())

    def forget_engine(self, engine_id: str) -> None:
        with self._lock:
            schema.forget(self._db, engine_id)

    def engines(self) -> list[schema.EngineRow]:
        """The engines that registered on this store (live or not: see ``last_seen``)."""
        with self._lock:
            return schema.engines(self._db)

    def schema_version(self) -> tuple[int, str | None]:
        """The schema version and the caxton version that wrote it."""
        with self._lock:
            return schema.schema_version(self._db)

    def migrations(self) -> list[str]:
        with self._lock, self._db.read() as conn:
            return [row["name"] for row in conn.execute("SELECT name FROM migrations ORDER BY id").fetchall()]

    # --- writes -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One state change: a write transaction that bumps the serial once if anything changed."""
        with self._lock:
            with self._db.write() as conn:
                tx = Transaction(conn, self._read_serial(conn) + 1, self._db)
                yield tx
                if tx.dirty:
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'serial'", (str(tx.serial),))
                    self._notify(conn, str(tx.serial))
            if tx.rows and self.committed is not None:
                try:
                    self.committed(tx.rows)
                except Exception:  # the write is committed: a listener's failure must not fail it
                    log.exception("a listener of committed events failed")

    @contextmanager
    def unversioned(self, *, notify: bool = False) -> Iterator[Conn]:
        """A write transaction that does not bump the serial (the apply lock, apply records).

        ``notify``: the other replicas on PostgreSQL hear of it at commit (a rollout's record).
        """
        with self._lock, self._db.write() as conn:
            yield conn
            if notify:
                self._notify(conn, "rollout")

    def _notify(self, conn: Conn, payload: str) -> None:
        """On PostgreSQL, tell the other engines' state feeds (``caxton.engine.state.feed``): sent at commit."""
        if self._db.dialect == "postgres":
            conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, payload))

    @contextmanager
    def reading(self, *, snapshot: bool = False) -> Iterator[Conn]:
        """A connection for a few reads, under the store's lock (``snapshot``: all of them from one instant)."""
        with self._lock, self._db.read(snapshot=snapshot) as conn:
            yield conn

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No write transaction of this store is open or starts while inside (a backup's snapshot starts here)."""
        with self._lock:
            yield

    # --- reads ----------------------------------------------------------------------
    def serial(self) -> int:
        with self.reading() as conn:
            return self._read_serial(conn)

    @staticmethod
    def _read_serial(conn: Conn) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
        return int(row["value"])

    def counts(self) -> dict[tuple[str, str], int]:
        """Agents per (kind, state), counted in SQL (cheap at thousands of agents)."""
        with self.reading() as conn:
            rows = conn.execute("SELECT kind, state, COUNT(*) AS n FROM agents GROUP BY kind, state").fetchall()
        return {(row["kind"], row["state"]): int(row["n"]) for row in rows}

    def agents(self) -> list[AgentRow]:
        with self.reading() as conn:
            rows = conn.execute("SELECT * FROM agents ORDER BY id").fetchall()
        return [agent_from_row(row) for row in rows]

    def agent(self, agent_id: str) -> AgentRow | None:
        with self.reading() as conn:
            row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return None if row is None else agent_from_row(row)

    def unknown_agent(self, name: str) -> NotFound:
        """The error for an agent name this engine does not hold; the hint names the closest ones."""
        hint = "list agents with `caxton agents list`"
        close = closest(name, [row.id for row in self.agents()])
        return NotFound(f"no agent named {name!r} in the engine",
                        hint=f"did you mean {' or '.join(close)}? ({hint})" if close else hint)

    def revision(self, agent_id: str, number: int) -> RevisionRow:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT * FROM revisions WHERE agent_id = ? AND number = ?", (agent_id, number)
            ).fetchone()
        if row is None:
            raise NotFound(f"agent {agent_id!r} has no revision {number}", hint="see GET /api/v1/agents/{name}")
        return revision_from_row(row)

    def revisions(self, agent_id: str) -> list[RevisionRow]:
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT * FROM revisions WHERE agent_id = ? ORDER BY number", (agent_id,)
            ).fetchall()
        return [revision_from_row(row) for row in rows]

    def blob(self, sha256: str) -> bytes | None:
        with self.reading() as conn:
            row = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else bytes(row["data"])

    def spec_of(self, revision: RevisionRow) -> dict[str, Any]:
        data = self.blob(revision.spec_sha256)
        if data is None:
            raise StoreError(f"spec blob {revision.spec_sha256} of {revision.agent_id} is missing")
        spec: dict[str, Any] = json.loads(data)
        return spec

    def next_revision(self, agent_id: str) -> int:
        """The number a new revision of ``agent_id`` gets: never one used before, even by a failed deploy."""
        with self.reading() as conn:
            kept = conn.execute("SELECT MAX(number) AS n FROM revisions WHERE agent_id = ?", (agent_id,)).fetchone()
            tried = conn.execute("SELECT MAX(revision) AS n FROM events WHERE agent_id = ?", (agent_id,)).fetchone()
        return max(int(kept["n"] or 0), int(tried["n"] or 0)) + 1

    def snapshot_rows(self, *, specs: bool = True, agent_id: str | None = None,
                      ) -> tuple[int, list[tuple[AgentRow, RevisionRow | None, dict[str, Any] | None]]]:
        """The serial and every agent (or only ``agent_id``) with its current revision and spec, read consistently.

        ``specs=False``: without the specs (None), for views that show none (the console's overview).
        """
        columns = ", ".join(f"r.{name} AS r_{name}" for name in REVISION_COLUMNS)
        blob = ", b.data AS spec_data" if specs else ", 1 AS spec_data"
        join = " LEFT JOIN blobs b ON b.sha256 = r.spec_sha256" if specs else ""
        where = " WHERE a.id = ?" if agent_id is not None else ""
        with self.reading(snapshot=True) as conn:
            serial = self._read_serial(conn)
            rows = conn.execute(
                f"SELECT a.*, {columns}{blob} FROM agents a "
                f"LEFT JOIN revisions r ON r.agent_id = a.id AND r.number = a.revision{join}{where} ORDER BY a.id",
                (agent_id,) if agent_id is not None else (),
            ).fetchall()
        out: list[tuple[AgentRow, RevisionRow | None, dict[str, Any] | None]] = []
        for row in rows:
            agent = agent_from_row(row)
            if agent.revision is None:
                out.append((agent, None, None))
                continue
            if row["r_number"] is None or row["spec_data"] is None:
                raise StoreError(f"revision {agent.revision} of {agent.id} or its spec blob is missing")
            revision = RevisionRow(**{name: row[f"r_{name}"] for name in REVISION_COLUMNS})
            out.append((agent, revision, json.loads(row["spec_data"]) if specs else None))
        return serial, out

    def changed_since(self, serial: int, agent_ids: list[str]) -> list[str]:
        """Which of ``agent_ids`` have an event (a change) committed after state serial ``serial``."""
        changed: list[str] = []
        with self.reading() as conn:
            for start in range(0, len(agent_ids), 500):
                chunk = agent_ids[start:start + 500]
                marks = ",".join("?" for _ in chunk)
                rows = conn.execute(
                    f"SELECT DISTINCT agent_id FROM events WHERE agent_id IN ({marks}) AND serial > ?",
                    (*chunk, serial)).fetchall()
                changed += [row["agent_id"] for row in rows]
        return sorted(changed)

    def events(self, *, agent_id: str | None = None, after: int = 0, limit: int = 100,
               oldest: bool = False) -> list[EventRow]:
        """Events after id ``after``, oldest first: the newest ``limit`` of them (``oldest``: the first ``limit``)."""
        query = "SELECT * FROM events WHERE id > ?"
        params: list[Any] = [after]
        if agent_id is not None:
            query += " AND agent_id = ?"
            params.append(agent_id)
        query += f" ORDER BY id {'ASC' if oldest else 'DESC'} LIMIT ?"
        params.append(limit)
        with self.reading() as conn:
            rows = conn.execute(query, params).fetchall()
        found = [event_from_row(row) for row in rows]
        return found if oldest else found[::-1]


