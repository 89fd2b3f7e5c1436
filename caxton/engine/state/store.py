"""The engine's durable state: SQLite in WAL mode under the data directory, or PostgreSQL (``store.url``).

Owns the tables of ``caxton.engine.state.migrations`` (``migrations_pg`` on
PostgreSQL): agents, revisions (spec JSON and WASM modules stored
content-addressed by sha256 in ``blobs``, the last N kept per agent), the
append-only events, and the state serial. Every state change goes through one
``Store.transaction()``: a single writer (across processes too, see
``caxton.engine.state.db``), one transaction, and the serial bumped exactly
once inside it. Called by ``caxton.engine.operations`` (writes) and
``caxton.engine.http.app`` (reads).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from caxton.engine import states
from caxton.engine.state import schema
from caxton.engine.state.db import (
    Conn,
    Cursor,
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
from caxton.engine.state.schema import Migrations
from caxton.errors import NotFound
from caxton.spec.digest import canonical_json, sha256_hex
from caxton.spec.identity import closest

DB_NAME = "engine.db"
log = logging.getLogger(__name__)


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Source:
    """Who or what caused a change (recorded on revisions and events)."""

    actor: str | None = None
    plan_id: str | None = None
    git_commit: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Source:
        data = data or {}
        return cls(
            actor=_opt_str(data.get("actor")),
            plan_id=_opt_str(data.get("plan_id")),
            git_commit=_opt_str(data.get("git_commit")),
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class AgentRow:
    id: str
    name: str
    kind: str
    state: str
    revision: int | None
    applied_spec_digest: str | None
    traffic: dict[str, int]
    git_commit: str | None
    plan_id: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class RevisionRow:
    agent_id: str
    number: int
    version: str
    spec_sha256: str
    module_sha256: str | None
    spec_digest: str
    created_at: str
    actor: str | None
    plan_id: str | None
    git_commit: str | None


@dataclass(frozen=True)
class EventRow:
    id: int
    at: str
    serial: int
    agent_id: str | None
    what: str
    from_state: str | None
    to_state: str | None
    revision: int | None
    message: str
    actor: str | None
    plan_id: str | None
    git_commit: str | None
    data: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at, "serial": self.serial, "agent": self.agent_id, "what": self.what,
            "from_state": self.from_state, "to_state": self.to_state, "revision": self.revision,
            "message": self.message, "actor": self.actor, "plan_id": self.plan_id,
            "git_commit": self.git_commit, "data": self.data,
        }


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
        return [_agent(row) for row in rows]

    def agent(self, agent_id: str) -> AgentRow | None:
        with self.reading() as conn:
            row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return None if row is None else _agent(row)

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
        return _revision(row)

    def revisions(self, agent_id: str) -> list[RevisionRow]:
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT * FROM revisions WHERE agent_id = ? ORDER BY number", (agent_id,)
            ).fetchall()
        return [_revision(row) for row in rows]

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
        columns = ", ".join(f"r.{name} AS r_{name}" for name in _REVISION_COLUMNS)
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
            agent = _agent(row)
            if agent.revision is None:
                out.append((agent, None, None))
                continue
            if row["r_number"] is None or row["spec_data"] is None:
                raise StoreError(f"revision {agent.revision} of {agent.id} or its spec blob is missing")
            revision = RevisionRow(**{name: row[f"r_{name}"] for name in _REVISION_COLUMNS})
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
        found = [_event(row) for row in rows]
        return found if oldest else found[::-1]


@dataclass
class Transaction:
    """Writes inside one ``Store.transaction()``; ``serial`` is the serial it commits."""

    conn: Conn
    serial: int
    db: Database
    dirty: bool = False
    events: list[int] = field(default_factory=list)
    #: The events written, as ``Store.committed`` is given them.
    rows: list[EventRow] = field(default_factory=list)

    def _write(self, sql: str, params: tuple[Any, ...] | list[Any]) -> Cursor:
        self.dirty = True
        return self.conn.execute(sql, params)

    def put_blob(self, data: bytes, kind: str) -> str:
        sha = sha256_hex(data)
        self._write(
            "INSERT INTO blobs (sha256, kind, size, data) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
            (sha, kind, len(data), data),
        )
        return sha

    def put_spec(self, spec: dict[str, Any]) -> str:
        return self.put_blob(canonical_json(spec), "spec")

    def add_revision(
        self, agent_id: str, *, version: str, spec_sha256: str, module_sha256: str | None,
        spec_digest: str, source: Source, number: int | None = None,
    ) -> int:
        if number is None:
            row = self.conn.execute("SELECT MAX(number) AS n FROM revisions WHERE agent_id = ?", (agent_id,)).fetchone()
            number = int(row["n"] or 0) + 1
        self._write(
            "INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (agent_id, number, version, spec_sha256, module_sha256, spec_digest, utcnow(),
             source.actor, source.plan_id, source.git_commit),
        )
        return number

    def save_agent(self, row: AgentRow) -> None:
        self._write(
            "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "name=excluded.name, kind=excluded.kind, state=excluded.state, revision=excluded.revision, "
            "applied_spec_digest=excluded.applied_spec_digest, traffic=excluded.traffic, "
            "git_commit=excluded.git_commit, plan_id=excluded.plan_id, updated_at=excluded.updated_at",
            (row.id, row.name, row.kind, row.state, row.revision, row.applied_spec_digest,
             json.dumps(row.traffic, sort_keys=True), row.git_commit, row.plan_id, row.created_at, row.updated_at),
        )

    def delete_agent(self, agent_id: str) -> None:
        self._write("DELETE FROM agents WHERE id = ?", (agent_id,))

    def transition(
        self, agent: AgentRow, target: str, source: Source, *, revision: int | None = None, message: str = "",
    ) -> AgentRow:
        """Move ``agent`` to ``target`` (checked against its state machine) and record the event."""
        states.check(agent.kind, agent.state, target)
        moved = _replace(agent, state=target, updated_at=utcnow())
        self.save_agent(moved)
        self.event(
            "transition", source, agent_id=agent.id, from_state=agent.state, to_state=target,
            revision=revision if revision is not None else agent.revision,
            message=message or f"{agent.state} -> {target}",
        )
        return moved

    def event(
        self, what: str, source: Source, *, agent_id: str | None = None, from_state: str | None = None,
        to_state: str | None = None, revision: int | None = None, message: str = "", data: Any = None,
    ) -> int:
        self.dirty = True
        at, text = utcnow(), None if data is None else json.dumps(data, default=str)
        event_id = self.db.insert_id(
            self.conn,
            "INSERT INTO events (at, serial, agent_id, what, from_state, to_state, revision, message, "
            "actor, plan_id, git_commit, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at, self.serial, agent_id, what, from_state, to_state, revision, message,
             source.actor, source.plan_id, source.git_commit, text),
        )
        self.events.append(event_id)
        self.rows.append(EventRow(event_id, at, self.serial, agent_id, what, from_state, to_state, revision, message,
                                  source.actor, source.plan_id, source.git_commit,
                                  None if text is None else json.loads(text)))
        return event_id

    def prune_revisions(self, agent_id: str, keep: int, *, protect: set[int]) -> list[int]:
        """Delete all but the newest ``keep`` revisions (never those in ``protect``) and unused blobs."""
        rows = self.conn.execute(
            "SELECT number FROM revisions WHERE agent_id = ? ORDER BY number DESC", (agent_id,)
        ).fetchall()
        doomed = [int(r["number"]) for r in rows[keep:] if int(r["number"]) not in protect]
        for number in doomed:
            self._write("DELETE FROM revisions WHERE agent_id = ? AND number = ?", (agent_id, number))
        if doomed:
            self._write(
                "DELETE FROM blobs WHERE sha256 NOT IN (SELECT spec_sha256 FROM revisions) "
                "AND sha256 NOT IN (SELECT module_sha256 FROM revisions WHERE module_sha256 IS NOT NULL)",
                (),
            )
        return doomed


def _replace(agent: AgentRow, **changes: Any) -> AgentRow:
    return replace(agent, **changes)


def new_agent_row(agent_id: str, name: str, kind: str, source: Source) -> AgentRow:
    now = utcnow()
    return AgentRow(
        id=agent_id, name=name, kind=kind, state=states.initial(kind), revision=None,
        applied_spec_digest=None, traffic={}, git_commit=source.git_commit, plan_id=source.plan_id,
        created_at=now, updated_at=now,
    )


def _agent(row: Any) -> AgentRow:
    return AgentRow(
        id=row["id"], name=row["name"], kind=row["kind"], state=row["state"], revision=row["revision"],
        applied_spec_digest=row["applied_spec_digest"], traffic=json.loads(row["traffic"]),
        git_commit=row["git_commit"], plan_id=row["plan_id"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_REVISION_COLUMNS = (
    "agent_id", "number", "version", "spec_sha256", "module_sha256", "spec_digest", "created_at", "actor",
    "plan_id", "git_commit",
)


def _revision(row: Any) -> RevisionRow:
    return RevisionRow(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row iterates values


def _event(row: Any) -> EventRow:
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 - Row iterates values
    values["data"] = None if values["data"] is None else json.loads(values["data"])
    return EventRow(**values)
