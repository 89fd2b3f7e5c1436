"""``caxton storage migrate``: move an embedded engine's whole state and memory into PostgreSQL, verified.

What it copies: every table of the data directory's ``engine.db`` that the PostgreSQL schema has (agents,
revisions and their blobs, events, the serial in ``meta``, applies, the apply lease, rollouts, pins,
conversation turns, agent logs, and any table a later migration adds), and the vector memory
(``caxton.memory.pgcopy``: entities with their vectors, relations, meta). The table list is derived
from the two schemas: a source table the target's schema lacks fails the migration before anything is
written. Not copied: ``migrations`` (the target's own migrations create the same list, compared by
name) and ``engines`` (heartbeats of running engines: each engine on the target writes its own).

How: the data directory's engine lock is held throughout (an engine running on it is refused), the
source is read in one read transaction, and the target is written in **one** PostgreSQL transaction
(under the store's write lock): the schema by the normal migrations, every row with its original ids
(identity sequences then continue after them), and, before ``COMMIT``, the verification: per table, the
row count and a content digest of the source and of the target, computed the same way (an
order-independent sum of each row's sha256 over a canonical JSON of its values). Any failure or
mismatch rolls everything back: the target is left as it was.

A target that already holds a Caxton store or memory is refused unless ``replace``: then Caxton's tables
(the ones both schemas create) are dropped and rebuilt inside the same transaction (other tables in the
database are left alone), and still refused while an engine's heartbeat on it is recent.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton.engine import datadir
from caxton.engine.state import schema
from caxton.engine.state.db import PgConn, PostgresDatabase, StoreError, open_postgres
from caxton.engine.state.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from caxton.engine.state.migrations_pg import MIGRATIONS, MIGRATIONS_TABLE
from caxton.engine.state.records import utcnow
from caxton.engine.state.store import DB_NAME
from caxton.errors import Conflict, InvalidInput, NotFound

#: Store tables not copied as rows, and why (shown in the report).
SKIPPED = {
    "migrations": "made by the target's own migrations (the same names, compared)",
    "engines": "heartbeats of running engines: each engine on PostgreSQL writes its own",
}
_CREATED = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
_FUNCTION = re.compile(r"CREATE\s+FUNCTION\s+(\w+)", re.IGNORECASE)


class MigrateRefused(Conflict):
    """``caxton storage migrate`` would overwrite a PostgreSQL database that holds Caxton's tables."""

    code = "migrate_refused"


@dataclass(frozen=True)
class Table:
    """One copied table: where it is on both sides and what it reads."""

    database: str  # "store" or "memory"
    source: str
    target: str


def store_tables() -> list[str]:
    """The tables the PostgreSQL store's migrations create (and the migrations table)."""
    names = [m.group(1) for _, script in MIGRATIONS for m in _CREATED.finditer(script)]
    return ["migrations", *names]


def memory_tables() -> list[str]:
    from caxton.memory import pgschema

    names = [m.group(1) for _, statements in pgschema.MIGRATIONS for s in statements for m in _CREATED.finditer(s)]
    return ["memory_migrations", *names]


def migrate(data_dir: Path, url: str, *, memory_path: str = "memory.db", replace: bool = False) -> dict[str, Any]:
    """Copy ``data_dir``'s store (and memory) into the PostgreSQL database at ``url``; return the report."""
    started = time.monotonic()
    source = data_dir / DB_NAME
    if not source.is_file():
        raise NotFound(f"no engine store ({DB_NAME}) in {data_dir}",
                       hint="give the data directory of the embedded engine to move (its --data-dir)")
    lock = datadir.acquire(data_dir)
    try:
        memory = data_dir / memory_path
        return _migrate(source, memory if memory.is_file() else None, url, replace=replace, started=started) | {
            "source": str(data_dir)}
    finally:
        lock.release()


def _migrate(source: Path, memory: Path | None, url: str, *, replace: bool, started: float) -> dict[str, Any]:
    store = _open_source(source)
    mem = None
    try:
        _check_source_schema(store, source)
        if memory is not None:
            from caxton.memory import pgcopy

            mem = pgcopy.open_source(memory)
        db = open_postgres(url, serialize_writes=True, name="caxton-migrate")
        try:
            report = _copy(store, mem, db, replace=replace)
        finally:
            db.close()
    finally:
        store.close()
        if mem is not None:
            mem.close()
    report["duration_seconds"] = round(time.monotonic() - started, 3)
    return report


def _open_source(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("BEGIN")  # one snapshot for the copy and the digests (the engine lock keeps writers out anyway)
    return conn


def _check_source_schema(conn: sqlite3.Connection, path: Path) -> None:
    done = [str(row[0]) for row in conn.execute("SELECT name FROM migrations ORDER BY id")]
    known = [name for name, _ in SQLITE_MIGRATIONS]
    if done == known:
        return
    newer = [name for name in done if name not in known]
    if newer:
        raise InvalidInput(
            f"{path} has schema version {len(done)} (migrations this caxton does not know: {', '.join(newer)}); "
            f"this caxton knows schema version {len(known)}",
            hint="run `caxton storage migrate` of the caxton version whose engine last ran on this data directory")
    raise InvalidInput(
        f"{path} has schema version {len(done)}; this caxton creates schema version {len(known)} in PostgreSQL",
        hint="start this caxton's engine on the data directory once and stop it (it upgrades the store in place), "
             "then migrate")


def _copy(store: sqlite3.Connection, mem: Any, db: PostgresDatabase, *, replace: bool) -> dict[str, Any]:
    with db.write() as conn:
        assert isinstance(conn, PgConn)
        replaced = _prepare_target(conn, db, replace=replace)
        conn.execute(MIGRATIONS_TABLE)
        for index, (name, script) in enumerate(MIGRATIONS):
            schema.apply_one(conn, db, index, name, script, utcnow())
        tables = _copy_store(store, conn, db)
        if mem is not None:
            from caxton.memory import pgcopy

            try:
                pgcopy.copy(mem, conn.raw, db.url)
            except db.errors as error:
                raise _rejected("the memory", error) from error
            tables += [Table("memory", name, target) for name, (target, _) in pgcopy.TABLES.items()]
        results = [_verify(table, store, mem, conn) for table in tables]
        bad = [r for r in results if not r["ok"]]
        if bad:  # raising here rolls the whole transaction back
            raise StoreError(
                "the copy does not match its source in "
                + ", ".join(f"{r['database']}.{r['table']} ({r['rows']} rows, {r['target_rows']} copied)" for r in bad)
                + f"; nothing was written to {db.location}",
                hint="this is a bug in caxton storage migrate: report it with the report above")
        serial = int(conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()["value"])
    return {"target": db.location, "ok": True, "replaced": replaced, "schema_version": len(MIGRATIONS),
            "serial": serial, "memory": mem is not None, "tables": results,
            "skipped": [{"table": name, "why": why} for name, why in SKIPPED.items()]}


def _prepare_target(conn: PgConn, db: PostgresDatabase, *, replace: bool) -> bool:
    """Refuse a target holding Caxton's tables (unless ``replace``: drop them); True when something was dropped."""
    ours = store_tables() + memory_tables()
    present = [str(row["table_name"]) for row in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name = ANY(?)", (ours,)).fetchall()]
    if not present:
        return False
    if not replace:
        raise MigrateRefused(
            f"the PostgreSQL database {db.location} already holds Caxton's tables ({', '.join(sorted(present))})",
            hint="migrate into an empty database, or add --replace to drop Caxton's tables there (its store and "
                 "memory, with their data) and copy this data directory in their place")
    if "engines" in present:
        alive = conn.execute("SELECT id FROM engines WHERE last_seen > ? ORDER BY id",
                             (time.time() - schema.STALE_AFTER,)).fetchall()
        if alive:
            raise MigrateRefused(
                f"engines are running on {db.location} ({', '.join(str(r['id']) for r in alive)}): not replacing "
                "their store", hint="stop every engine on that database first")
    conn.execute(f"DROP TABLE IF EXISTS {', '.join(present)} CASCADE")
    for _, script in MIGRATIONS:
        for match in _FUNCTION.finditer(script):
            conn.execute(f"DROP FUNCTION IF EXISTS {match.group(1)}() CASCADE")
    return True


def _columns(conn: PgConn) -> dict[str, list[str]]:
    """The target's tables and their columns (generated columns left out: they are computed there)."""
    columns: dict[str, list[str]] = {}
    for row in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND is_generated = 'NEVER' ORDER BY table_name, ordinal_position").fetchall():
        columns.setdefault(str(row["table_name"]), []).append(str(row["column_name"]))
    return columns


def _dependency_order(conn: PgConn, tables: list[str]) -> list[str]:
    """``tables`` with every table after those its foreign keys reference."""
    edges: dict[str, set[str]] = {t: set() for t in tables}
    for row in conn.execute(
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint "
            "WHERE contype = 'f'").fetchall():
        if row["child"] in edges and row["parent"] in edges and row["child"] != row["parent"]:
            edges[str(row["child"])].add(str(row["parent"]))
    ordered: list[str] = []
    while edges:
        ready = sorted(t for t, parents in edges.items() if not parents - set(ordered))
        if not ready:  # a cycle of foreign keys: no order inserts them one table at a time
            raise StoreError(f"the tables {', '.join(sorted(edges))} reference each other in a cycle",
                             hint="this is a bug in caxton storage migrate: report it; nothing was written")
        ordered += ready
        for table in ready:
            del edges[table]
    return ordered


def _copy_store(store: sqlite3.Connection, conn: PgConn, db: PostgresDatabase) -> list[Table]:
    target = _columns(conn)
    source = [str(row[0]) for row in store.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    unknown = [t for t in source if t not in target and t not in SKIPPED]
    if unknown:
        raise InvalidInput(f"the store has tables the PostgreSQL schema does not: {', '.join(unknown)}",
                           hint="this is a bug in caxton storage migrate (a table was added to one schema only): "
                                "report it; nothing was written")
    copied = _dependency_order(conn, [t for t in source if t not in SKIPPED])
    for table in copied:
        columns, select = _select(store, table, target[table])
        if conn.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"]:  # noqa: S608 - seeded (meta)
            conn.execute(f"DELETE FROM {table}")  # noqa: S608
        rows = store.execute(select)
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) OVERRIDING SYSTEM VALUE "  # noqa: S608
               f"VALUES ({', '.join('?' * len(columns))})")
        try:
            while batch := rows.fetchmany(500):
                conn.executemany(sql, batch)
        except db.errors as error:
            raise _rejected(f"table {table}", error) from error
        _continue_identities(conn, table)
    return [Table("store", t, t) for t in copied]


def _select(store: sqlite3.Connection, table: str, target: list[str]) -> tuple[list[str], str]:
    """The target's columns of ``table`` and the SELECT reading them from the source (fails on a missing one)."""
    have = [str(row[1]) for row in store.execute(f"PRAGMA table_info({table})")]
    extra = [c for c in have if c not in target]
    missing = [c for c in target if c not in have and c != "rowid"]  # rowid: SQLite's implicit one (applies)
    if extra or missing:
        raise InvalidInput(f"table {table} differs between the store and the PostgreSQL schema "
                           f"(only in the store: {extra or 'none'}; only in PostgreSQL: {missing or 'none'})",
                           hint="this is a bug in caxton storage migrate: report it; nothing was written")
    return target, f"SELECT {', '.join(target)} FROM {table}"  # noqa: S608


def _continue_identities(conn: PgConn, table: str) -> None:
    for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? AND is_identity = 'YES'", (table,)).fetchall():
        column = str(row["column_name"])
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "  # noqa: S608
                     f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)")


def _rejected(what: str, error: Exception) -> StoreError:
    reason = " ".join(str(error).split())
    return StoreError(f"PostgreSQL rejected a row of {what}: {reason}; nothing was written (the copy is one "
                      "transaction, rolled back)",
                      hint="fix that row in the source data directory (or report it if the engine wrote it), "
                           "then migrate again")


# --- verification ---------------------------------------------------------------------------
def _verify(table: Table, store: sqlite3.Connection, mem: Any, conn: PgConn) -> dict[str, Any]:
    if table.database == "store":
        columns = _columns(conn)[table.target]
        source_rows: Iterable[Any] = store.execute(f"SELECT {', '.join(columns)} FROM {table.source}")  # noqa: S608
        target_rows: Iterable[Any] = _pg_rows(conn, f"SELECT {', '.join(columns)} FROM {table.target}")  # noqa: S608
    else:
        from caxton.memory import pgcopy

        source_rows, target_rows = pgcopy.source_rows(mem, table.source), pgcopy.target_rows(conn.raw, table.source)
    rows, digest = content_digest(source_rows)
    copied, copied_digest = content_digest(target_rows)
    return {"database": table.database, "table": table.target, "rows": rows, "digest": digest,
            "target_rows": copied, "target_digest": copied_digest, "ok": rows == copied and digest == copied_digest}


def _pg_rows(conn: PgConn, sql: str) -> Iterator[tuple[Any, ...]]:
    for row in conn.raw.execute(sql):  # type: ignore[call-overload]  # a constant query of the table's columns
        yield tuple(row.values())


def content_digest(rows: Iterable[Any]) -> tuple[int, str]:
    """(row count, digest) of ``rows``: the sum mod 2**256 of each row's sha256 over its canonical JSON, so the
    order rows come in does not matter (no ordering rule to agree on between SQLite and PostgreSQL)."""
    count, total = 0, 0
    for row in rows:
        body = json.dumps([_canonical(value) for value in row], separators=(",", ":")).encode()
        total = (total + int.from_bytes(hashlib.sha256(body).digest(), "big")) % (1 << 256)
        count += 1
    return count, f"{total:064x}"


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, float):
        return {"float": repr(value)}
    return value
