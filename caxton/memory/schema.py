"""The memory database: connection (pysqlite3 + sqlite-vec) and named migrations.

Called by :mod:`caxton.memory.store` when it opens the file. The machine's
Python may lack ``enable_load_extension``, so the bundled ``pysqlite3`` is used
when installed (see LAB.md). Migrations are applied in order, each in one
transaction, and recorded in ``schema_migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from caxton import errors

#: A DB-API connection of pysqlite3 (untyped library).
Connection = Any

MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "0001_entities_relations",
        (
            """CREATE TABLE entities (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                entity_type TEXT NOT NULL,
                observations TEXT NOT NULL DEFAULT '[]',
                scope TEXT NOT NULL CHECK (scope IN ('agent', 'workspace', 'global')),
                owner TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                version INTEGER NOT NULL DEFAULT 1,
                CHECK (scope != 'agent' OR owner IS NOT NULL)
            )""",
            (
                "CREATE UNIQUE INDEX entities_key ON entities "
                "(scope, (CASE WHEN scope = 'agent' THEN owner ELSE '' END), name)"
            ),
            "CREATE INDEX entities_owner ON entities (owner)",
            "CREATE INDEX entities_name ON entities (name)",
            """CREATE TABLE relations (
                id INTEGER PRIMARY KEY,
                from_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
                to_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
                relation_type TEXT NOT NULL,
                strength REAL NOT NULL DEFAULT 1.0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (from_id, to_id, relation_type)
            )""",
            "CREATE INDEX relations_to ON relations (to_id)",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
    (
        "0002_entity_vectors",
        ("CREATE VIRTUAL TABLE entity_vectors USING vec0(embedding float[384])",),
    ),
)


def now() -> str:
    """UTC timestamp as stored in the database."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sqlite_module() -> Any:
    try:
        import pysqlite3  # type: ignore[import-not-found]

        return pysqlite3
    except ImportError:  # pragma: no cover - platforms without the wheel
        import sqlite3

        return sqlite3


def connect(path: Path) -> Connection:
    """Open (creating if needed) the memory database, load sqlite-vec, migrate."""
    import sqlite_vec

    sqlite = _sqlite_module()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            conn.execute(f"PRAGMA {pragma}")
        migrate(conn)
    except sqlite.DatabaseError as exc:
        raise errors.Unavailable(
            f"memory database {path} cannot be opened: {exc}",
            hint="check the file (sqlite3 FILE 'PRAGMA integrity_check'), or restore it from a backup/export",
        ) from exc
    return conn


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied now."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    applied: list[str] = []
    for name, statements in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
            conn.execute("COMMIT")  # another process applied it meanwhile
            continue
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (name, now()),
            )
        except BaseException:
            if conn.in_transaction:  # SQLite already rolled back after SQLITE_FULL
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(name)
    return applied
