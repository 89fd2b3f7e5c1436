"""The store's schema: migrations applied in order, its version guard, and the engines using it.

``migrate`` applies the migrations not yet recorded in the ``migrations``
table, each in its own write transaction, and records in ``meta`` the schema
version (how many migrations) and the caxton version that wrote it. Two
guards keep engines of different versions from hurting each other on one
database (several engines share a PostgreSQL store):

- an engine whose code is older than the database's schema (the database has
  migrations it does not know) refuses to start: ``SchemaTooNew``;
- a newer engine refuses to migrate while an older engine uses the schema:
  every started engine keeps a heartbeat row in ``engines`` (its caxton
  version, the schema version its code knows, host, pid, last seen), and a
  migration is refused while a row of an older schema was seen within
  ``STALE_AFTER`` seconds (unless it names a process of this host that is
  gone: an engine killed here does not hold the upgrade back): ``SchemaInUse``.

Both checks run inside the write transaction that changes the schema or
registers an engine, so they hold with several processes (writes are
serialized: ``caxton.engine.state.db``). Engines of caxton versions before
the ``engines`` table (migration ``0006_engines``) keep no heartbeat and
cannot be seen.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from caxton import __version__
from caxton.engine import processes
from caxton.engine.state.db import Conn, Database, StoreError

#: Seconds between an engine's heartbeats (``caxton.engine.core`` runs them).
HEARTBEAT_INTERVAL = 10.0
#: An engine not seen for this long is taken for dead (it no longer holds back a migration).
STALE_AFTER = 3 * HEARTBEAT_INTERVAL
#: The migration that creates the ``engines`` table.
ENGINES_MIGRATION = "0006_engines"

Migrations = Sequence[tuple[str, str]]


class SchemaTooNew(StoreError):
    """The database's schema is newer than this engine's code."""

    code = "schema_too_new"


class SchemaInUse(StoreError):
    """A pending migration would change a schema an older running engine uses."""

    code = "schema_in_use"


@dataclass(frozen=True)
class EngineRow:
    id: str
    caxton_version: str
    schema_version: int
    host: str
    pid: int
    started_at: str
    last_seen: float


def migrate(db: Database, scripts: Migrations, table: str, *, now: Callable[[], float] = time.time,
            utcnow: Callable[[], str]) -> list[str]:
    """Apply pending ``scripts`` to ``db`` (the guards above first); return the names applied now."""
    try:
        with db.write() as conn:
            conn.execute(table)
            too_new(conn, db, scripts)
    except db.errors as error:
        raise schema_error(db, error) from error
    applied: list[str] = []
    for index, (name, script) in enumerate(scripts):
        try:
            with db.write() as conn:
                if name in _done(conn):
                    continue  # applied earlier, or by another engine just now
                in_use(conn, db, len(scripts), now())
                apply_one(conn, db, index, name, script, utcnow())
        except db.errors as error:
            raise schema_error(db, error, name) from error
        applied.append(name)
    return applied


def apply_one(conn: Conn, db: Database, index: int, name: str, script: str, at: str) -> None:
    """Run migration number ``index`` (from 0) in ``conn``'s transaction and record it (and the schema version)."""
    db.run_script(conn, script)
    conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, at))
    _put_meta(conn, "schema_version", str(index + 1))
    _put_meta(conn, "caxton_version", __version__)


def too_new(conn: Conn, db: Database, scripts: Migrations) -> None:
    """Refuse a database that has migrations this code does not know (a newer engine migrated it)."""
    unknown = sorted(_done(conn) - {name for name, _ in scripts})
    if not unknown:
        return
    wrote = _meta(conn, "caxton_version") or "a newer caxton"
    version = _meta(conn, "schema_version") or "?"
    raise SchemaTooNew(
        f"the store at {db.location} has schema version {version} (written by caxton {wrote}; migrations this "
        f"engine does not know: {', '.join(unknown)}); this engine (caxton {__version__}) knows schema version "
        f"{len(scripts)}",
        hint=f"run caxton {wrote} or newer on this store (a store is never migrated down), or restore a backup "
             "taken by this version",
    )


def in_use(conn: Conn, db: Database, target: int, now: float) -> None:
    """Refuse to migrate to ``target`` while an engine of an older schema was seen lately."""
    if ENGINES_MIGRATION not in _done(conn):
        return
    rows = conn.execute("SELECT * FROM engines WHERE last_seen > ? AND schema_version < ? ORDER BY id",
                        (now - STALE_AFTER, target)).fetchall()
    older = [e for e in map(_engine, rows) if not processes.gone(e.host, e.pid)]  # killed here: not waited for
    if not older:
        return
    names = "; ".join(f"caxton {e.caxton_version} on {e.host} (pid {e.pid}, schema version {e.schema_version}, "
                      f"seen {max(now - e.last_seen, 0):.0f}s ago)" for e in older)
    raise SchemaInUse(
        f"refusing to migrate the store at {db.location} to schema version {target} (caxton {__version__}): "
        f"{len(older)} older engine(s) use it: {names}",
        hint=f"stop or upgrade those engines first, then start this one; an engine that died is forgotten "
             f"{STALE_AFTER:.0f}s after its last heartbeat",
    )


def register(db: Database, scripts: Migrations, *, now: float, started_at: str) -> str:
    """Record this engine (a heartbeat row) if the schema is still one it knows; return its id."""
    engine_id = f"{socket.gethostname()}:{os.getpid()}:{int(now * 1000)}"
    with db.write() as conn:
        too_new(conn, db, scripts)  # a newer engine may have migrated since this one did
        conn.execute(
            "INSERT INTO engines (id, caxton_version, schema_version, host, pid, started_at, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (engine_id, __version__, len(scripts), socket.gethostname(), os.getpid(), started_at, now))
    return engine_id


def heartbeat(db: Database, engine_id: str, now: float) -> None:
    """This engine is alive (its row is written again if it was deleted)."""
    with db.write() as conn:
        conn.execute("UPDATE engines SET last_seen = ? WHERE id = ?", (now, engine_id))


def forget(db: Database, engine_id: str) -> None:
    """This engine stopped: it no longer holds back a migration."""
    with db.write() as conn:
        conn.execute("DELETE FROM engines WHERE id = ?", (engine_id,))


def engines(db: Database) -> list[EngineRow]:
    with db.read() as conn:
        return [_engine(row) for row in conn.execute("SELECT * FROM engines ORDER BY id").fetchall()]


def schema_version(db: Database) -> tuple[int, str | None]:
    """The recorded schema version and the caxton version that wrote it."""
    with db.read() as conn:
        version = _meta(conn, "schema_version")
        return int(version or 0), _meta(conn, "caxton_version")


def _done(conn: Conn) -> set[str]:
    return {row["name"] for row in conn.execute("SELECT name FROM migrations").fetchall()}


def _meta(conn: Conn, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row["value"])


def _put_meta(conn: Conn, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (key, value))


def _engine(row: Any) -> EngineRow:
    return EngineRow(row["id"], row["caxton_version"], int(row["schema_version"]), row["host"], int(row["pid"]),
                     row["started_at"], float(row["last_seen"]))


def schema_error(db: Database, error: Exception, migration: str | None = None) -> StoreError:
    """A failed schema change as what failed, where, and how to fix it (a missing privilege on PostgreSQL)."""
    if isinstance(error, StoreError):
        return error
    what = f"migration {migration}" if migration else "creating the migrations table"
    reason = " ".join(str(error).split())
    if db.dialect == "postgres" and getattr(error, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
        return StoreError(f"{what} failed in the PostgreSQL store at {db.location}: {reason}",
                          hint="the engine's role must be allowed to create tables in the database's schema "
                               "(e.g. make it the database's owner, or GRANT CREATE ON SCHEMA public TO it)")
    return StoreError(f"{what} failed in the store at {db.location}: {reason}",
                      hint="restore the data directory from a backup" if db.dialect == "sqlite"
                      else "check the database's state and the role's privileges, then restart the engine")


#: PostgreSQL's SQLSTATE for a missing privilege.
INSUFFICIENT_PRIVILEGE = "42501"
