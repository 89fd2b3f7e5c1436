"""``caxton storage verify``: an offline check of the engine's databases, embedded (a data directory) or PostgreSQL.

Checks, without changing anything, on both backends: the schema (every recorded migration one this caxton
knows, the recorded schema version matching them); every blob's bytes against its sha256 and size (the
specs and WASM modules of every kept revision); every revision's spec and module blobs present; every
agent's current revision present; the state serial at least the newest event's; and lists orphans (blobs
no revision uses). On SQLite also ``PRAGMA integrity_check`` of the store and of the memory database (on
PostgreSQL the server's own checks, e.g. ``amcheck``, cover the pages); on PostgreSQL the memory's tables,
when the database holds them, have their migrations checked and their vectors counted. Reading is safe
while engines serve (WAL readers never block a SQLite writer; PostgreSQL reads one snapshot), so nothing
is locked.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from caxton.engine.state.db import open_postgres
from caxton.engine.state.migrations import MIGRATIONS
from caxton.engine.state.migrations_pg import MIGRATIONS as PG_MIGRATIONS
from caxton.engine.state.store import DB_NAME
from caxton.errors import NotFound

#: Runs a query, returns its rows as tuples (the same checks read both backends through it).
Rows = Callable[[str], Sequence[Sequence[Any]]]


def verify(data_dir: Path, memory_path: str = "memory.db") -> dict[str, Any]:
    """The findings for ``data_dir``: ``ok`` is true when there are no problems (orphans are not problems)."""
    store = data_dir / DB_NAME
    if not store.is_file():
        raise NotFound(f"no engine store ({DB_NAME}) in {data_dir}", hint="give the engine's --data-dir")
    problems: list[str] = []
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        problems += _integrity(conn, DB_NAME)
        found = _store_checks(lambda sql: conn.execute(sql).fetchall(), [n for n, _ in MIGRATIONS])
    finally:
        conn.close()
    problems += found["problems"]
    memory = data_dir / memory_path
    if memory.is_file():
        conn = sqlite3.connect(f"file:{memory}?mode=ro", uri=True)
        try:
            problems += _integrity(conn, memory.name)
        finally:
            conn.close()
    return {"data_dir": str(data_dir), "location": str(data_dir), "backend": "sqlite", "ok": not problems,
            "problems": problems, "orphans": found["orphans"], "counts": found["counts"],
            "memory_checked": memory.is_file()}


def verify_postgres(url: str) -> dict[str, Any]:
    """The findings for the PostgreSQL store at ``url`` (and the memory's tables there, if any)."""
    db = open_postgres(url, serialize_writes=False, name="caxton-verify")
    try:
        with db.read(snapshot=True) as conn:
            def rows(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(row.values()) for row in conn.execute(sql).fetchall()]

            present = {str(r[0]) for r in rows("SELECT table_name FROM information_schema.tables "
                                               "WHERE table_schema = current_schema()")}
            if "migrations" not in present:
                raise NotFound(f"no Caxton store in the PostgreSQL database {db.location}",
                               hint="give the store.url of an engine (CAXTON_STORE_URL); an engine creates its "
                                    "tables on first start, `caxton storage migrate` copies an embedded one in")
            found = _store_checks(rows, [n for n, _ in PG_MIGRATIONS])
            memory = "memory_migrations" in present
            if memory:
                found["problems"] += _memory_checks(rows)
                found["counts"]["memory_entities"] = int(rows("SELECT COUNT(*) FROM memory_entities")[0][0])
    finally:
        db.close()
    problems = found["problems"]
    return {"store_url": db.location, "location": db.location, "backend": "postgres", "ok": not problems,
            "problems": problems, "orphans": found["orphans"], "counts": found["counts"], "memory_checked": memory}


def _store_checks(rows: Rows, known: list[str]) -> dict[str, Any]:
    """The checks both backends share, through ``rows``."""
    problems = _schema(rows, known)
    blobs, bad = _blobs(rows)
    problems += bad
    problems += _references(rows, blobs)
    problems += _serial(rows)
    orphans = sorted(set(blobs) - _used(rows))
    counts = {t: int(rows(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ("agents", "revisions", "blobs")}  # noqa: S608
    return {"problems": problems, "orphans": orphans, "counts": counts}


def _schema(rows: Rows, known: list[str]) -> list[str]:
    done = [str(r[0]) for r in rows("SELECT name FROM migrations ORDER BY id")]
    problems = [f"schema: migration {name} is not one this caxton knows (a newer caxton migrated this store)"
                for name in done if name not in known]
    if done != known[:len(done)] and not problems:
        problems.append(f"schema: the recorded migrations ({', '.join(done)}) are not this caxton's in order")
    version = rows("SELECT value FROM meta WHERE key = 'schema_version'")
    if version and int(version[0][0]) != len(done):
        problems.append(f"schema: meta.schema_version is {version[0][0]} but {len(done)} migrations are recorded")
    return problems


def _serial(rows: Rows) -> list[str]:
    serial = rows("SELECT value FROM meta WHERE key = 'serial'")
    newest = rows("SELECT MAX(serial) FROM events")[0][0]
    if not serial:
        return ["meta: the state serial is missing"]
    if newest is not None and int(serial[0][0]) < int(newest):
        return [f"meta: the state serial {serial[0][0]} is behind the newest event's ({newest})"]
    return []


def _memory_checks(rows: Rows) -> list[str]:
    from caxton.memory import pgschema

    known = {name for name, _ in pgschema.MIGRATIONS}
    problems = [f"memory: migration {r[0]} is not one this caxton knows"
                for r in rows("SELECT name FROM memory_migrations ORDER BY name") if r[0] not in known]
    missing = int(rows("SELECT COUNT(*) FROM memory_entities WHERE embedding IS NULL")[0][0])
    if missing:
        problems.append(f"memory: {missing} entities have no vector (`caxton memory reindex` computes them)")
    return problems


def _integrity(conn: sqlite3.Connection, name: str) -> list[str]:
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        return [f"{name}: not a readable SQLite database: {error}"]
    return [] if rows == ["ok"] else [f"{name}: integrity check: {row}" for row in rows[:20]]


def _blobs(rows: Rows) -> tuple[dict[str, str], list[str]]:
    kinds: dict[str, str] = {}
    bad: list[str] = []
    for sha, kind, size, data in rows("SELECT sha256, kind, size, data FROM blobs"):
        kinds[sha] = kind
        data = bytes(data)
        if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            bad.append(f"{kind} blob {sha[:12]}...: its bytes do not match its sha256 or size")
    return kinds, bad


def _references(rows: Rows, blobs: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for agent, number, spec, module in rows(
            "SELECT agent_id, number, spec_sha256, module_sha256 FROM revisions ORDER BY agent_id, number"):
        if spec not in blobs:
            problems.append(f"revision {number} of {agent}: spec blob {spec[:12]}... is missing")
        if module is not None and module not in blobs:
            problems.append(f"revision {number} of {agent}: module blob {module[:12]}... is missing")
    for agent, number in rows(
            "SELECT a.id, a.revision FROM agents a LEFT JOIN revisions r ON r.agent_id = a.id "
            "AND r.number = a.revision WHERE a.revision IS NOT NULL AND r.number IS NULL "
            "AND a.state NOT IN ('Failed')"):
        problems.append(f"agent {agent}: its revision {number} is missing")
    return problems


def _used(rows: Rows) -> set[str]:
    return {str(row[0]) for row in rows("SELECT spec_sha256 FROM revisions UNION SELECT module_sha256 FROM revisions "
                                        "WHERE module_sha256 IS NOT NULL")}
