"""Copy an embedded memory (SQLite + sqlite-vec) into PostgreSQL + pgvector, vectors included (no re-embedding).

Used by ``caxton storage migrate`` (:mod:`caxton.engine.state.pgmigrate`), which owns the transaction:
everything here runs on a connection it gives, inside its one transaction. The schema of the target is
made by the memory's own migrations (:func:`caxton.memory.pgschema.migrate_on`). The rows of each table
are read from both sides through :func:`source_rows` / :func:`target_rows` in one canonical shape (the
observations as canonical JSON, a vector as its float32 bytes), so the caller digests both the same way.

Tables: the SQLite memory's ``entities`` (with ``entity_vectors``), ``relations`` and ``meta`` become
``memory_entities`` (``embedding``), ``memory_relations`` and ``memory_meta``. A source holding a table
this code does not know (a newer memory schema) is refused before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from caxton import errors
from caxton.memory import pgschema, schema

#: Source table -> (target table, the columns both have, in order).
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "entities": ("memory_entities", ("id", "name", "entity_type", "observations", "scope", "owner", "created_at",
                                     "updated_at", "version")),
    "relations": ("memory_relations", ("id", "from_id", "to_id", "relation_type", "strength", "created_at",
                                       "updated_at")),
    "meta": ("memory_meta", ("key", "value")),
}
#: Source tables that are not copied as rows: the vectors (copied with their entity), the migrations record.
VECTORS = "entity_vectors"
_NOT_ROWS = {VECTORS, "schema_migrations"}
#: Target tables with an identity ``id`` whose sequence continues after the copied ids.
_IDENTITY = ("memory_entities", "memory_relations")
DIMENSIONS = 384


def open_source(path: Path) -> Any:
    """The memory database at ``path``, read-only, with sqlite-vec loaded (to read its vectors)."""
    import sqlite_vec

    sqlite = schema._sqlite_module()
    try:
        conn = sqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute("BEGIN")  # one snapshot for the copy and the digests
        check_source(conn, path)
    except sqlite.DatabaseError as exc:
        raise errors.InvalidInput(f"memory database {path} cannot be read: {exc}",
                                  hint="check it with `caxton storage verify --data-dir DIR`") from exc
    return conn


def check_source(conn: Any, path: Path) -> None:
    """Refuse a memory of another schema version, or one with a table this code would not copy."""
    done = [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    known = [name for name, _ in schema.MIGRATIONS]
    if done != known:
        raise errors.InvalidInput(
            f"memory database {path} has schema migrations {', '.join(done) or 'none'}; this caxton's are "
            f"{', '.join(known)}",
            hint="migrate with the caxton version whose engine last ran on this data directory (or start and stop "
                 "this version's engine on it once: it upgrades the memory)")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    unknown = sorted(t for t in tables if t not in TABLES and t not in _NOT_ROWS and not t.startswith("sqlite_")
                     and not t.startswith(f"{VECTORS}_"))  # sqlite-vec's shadow tables
    if unknown:
        raise errors.InvalidInput(f"memory database {path} has tables this caxton does not copy: {', '.join(unknown)}",
                                  hint="this is a bug in caxton storage migrate: report it; nothing was written")


def source_rows(conn: Any, table: str) -> Iterator[tuple[Any, ...]]:
    """The canonical rows of ``table`` (a source table name) in the SQLite memory."""
    _target, columns = TABLES[table]
    if table == "entities":
        sql = (f"SELECT {', '.join('e.' + c for c in columns)}, v.embedding FROM entities e "  # noqa: S608
               f"LEFT JOIN {VECTORS} v ON v.rowid = e.id")
        for row in conn.execute(sql):
            yield (*row[:3], _canonical_json(json.loads(row[3])), *row[4:9], None if row[9] is None else bytes(row[9]))
        return
    yield from (tuple(row) for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}"))  # noqa: S608


def target_rows(conn: Any, table: str) -> Iterator[tuple[Any, ...]]:
    """The canonical rows of the target of ``table`` (a source table name) in PostgreSQL."""
    import numpy as np

    target, columns = TABLES[table]
    if table == "entities":
        for row in map(_values, conn.execute(f"SELECT {', '.join(columns)}, embedding FROM {target}")):  # noqa: S608
            vector = None if row[9] is None else _floats(row[9], np).tobytes()
            yield (*row[:3], _canonical_json(row[3]), *row[4:9], vector)
        return
    yield from map(_values, conn.execute(f"SELECT {', '.join(columns)} FROM {target}"))  # noqa: S608


def copy(source: Any, conn: Any, url: str) -> None:
    """Create the memory's tables in ``conn``'s open transaction and copy every row and vector of ``source``."""
    import numpy as np
    from pgvector.psycopg import register_vector

    pgschema.migrate_on(conn, url)
    register_vector(conn)
    conn.execute("DELETE FROM memory_meta")  # none yet; the memory's meta comes from the source
    for table, (target, columns) in TABLES.items():
        names = list(columns) + (["embedding"] if table == "entities" else [])
        marks = ", ".join("%b" if name == "embedding" else "%s" for name in names)
        rows = (_for_insert(row, table, np) for row in source_rows(source, table))
        with conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {target} ({', '.join(names)}) "  # noqa: S608
                               f"OVERRIDING SYSTEM VALUE VALUES ({marks})", rows)
    for target in _IDENTITY:
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{target}', 'id'), "  # noqa: S608
                     f"COALESCE((SELECT MAX(id) FROM {target}), 0) + 1, false)")


def _for_insert(row: tuple[Any, ...], table: str, np: Any) -> tuple[Any, ...]:
    if table != "entities":
        return row
    vector = None if row[9] is None else np.frombuffer(row[9], dtype=np.float32)
    return (*row[:3], json.dumps(json.loads(row[3])), *row[4:9], vector)


def _floats(value: Any, np: Any) -> Any:
    """A pgvector value (a ``Vector`` or an array, by pgvector's version) as float32."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _values(row: Any) -> tuple[Any, ...]:
    """A row as a tuple, whatever the connection's row factory (the migration's connection reads dicts)."""
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)
