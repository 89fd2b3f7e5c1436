"""SQLite storage of the memory: entities, relations, vectors (the durable copy), metadata.

The default :class:`caxton.memory.backend.MemoryStore` (the other one is
:mod:`caxton.memory.pgstore`); searches go through the in-memory
:class:`caxton.memory.index.VectorIndex` that :meth:`Store.open_index` builds.
The service is its only caller. One connection, one lock: every read and every
write goes through ``Store.lock`` (SQLite's single-writer rule made explicit),
and every mutation happens inside :meth:`Store.write`, one transaction, so an
entity and its vector are committed together or not at all.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton import errors
from caxton.memory import index, models, schema

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_ENTITY_COLUMNS = "id, name, entity_type, observations, scope, owner, created_at, updated_at, version"
_RELATION_COLUMNS = "id, from_id, to_id, relation_type, strength, created_at, updated_at"
_KEY_SQL = "scope = ? AND (CASE WHEN scope = 'agent' THEN owner ELSE '' END) = ? AND name = ?"


def _entity(row: Sequence[Any]) -> models.Entity:
    return models.Entity(
        id=row[0],
        name=row[1],
        entity_type=row[2],
        observations=tuple(json.loads(row[3])),
        scope=row[4],
        owner=row[5],
        created_at=row[6],
        updated_at=row[7],
        version=row[8],
    )


def _relation(row: Sequence[Any]) -> models.Relation:
    return models.Relation(*row)


def _marks(count: int) -> str:
    return ",".join("?" * count)


class Store:
    """The memory database file."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self.lock = threading.RLock()
        self.conn = schema.connect(path)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def open_index(self) -> index.VectorIndex:
        """A search index built from every stored vector (the service applies each later write to it)."""
        built = index.VectorIndex()
        built.build(*self.load_vectors())
        return built

    def health(self) -> dict[str, object]:
        return {"backend": self.backend, "database": self.location}

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException as exc:
                if self.conn.in_transaction:  # SQLite already rolled back after SQLITE_FULL
                    self.conn.execute("ROLLBACK")
                full = self._full_behind(exc)
                if full is not None:
                    raise full from exc
                raise
            self.conn.execute("COMMIT")

    def _full_behind(self, exc: BaseException) -> errors.StorageFull | None:
        """A full database or disk behind a write error that does not say so.

        sqlite-vec reports SQLITE_FULL as "Internal sqlite-vec error: Could not
        insert a new vector chunk"; the database (at ``max_page_count``) or its
        volume (no free block) tells the truth.
        """
        if errors.storage_fault(exc) is not None or not type(exc).__module__.startswith(("sqlite3", "pysqlite3")):
            return None
        pages, cap = (self.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "max_page_count"))
        volume = os.statvfs(self.path.parent)
        if pages < cap and volume.f_bavail > 0:
            return None
        where = f"its size cap of {cap} pages" if pages >= cap else f"no free space on {self.path.parent}"
        return errors.StorageFull(f"the engine's memory database {self.path} is full ({where}): {exc}",
                                  hint="free space on the engine's data volume (old backups, logs), then retry")

    # --- entities (writes: call inside write()) ---------------------------------

    def insert_entity(self, item: models.EntityInput, vector: bytes, ts: str) -> int:
        cursor = self.conn.execute(
            "INSERT INTO entities (name, entity_type, observations, scope, owner, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                item.name,
                item.entity_type,
                json.dumps(list(item.observations)),
                item.scope,
                item.owner,
                ts,
                ts,
            ),
        )
        entity_id = int(cursor.lastrowid)
        self.conn.execute(
            "INSERT INTO entity_vectors (rowid, embedding) VALUES (?, ?)",
            (entity_id, vector),
        )
        return entity_id

    def replace_entity(
        self,
        entity_id: int,
        entity_type: str,
        observations: Sequence[str],
        vector: bytes,
        ts: str,
    ) -> None:
        self.conn.execute(
            "UPDATE entities SET entity_type = ?, observations = ?, updated_at = ?, version = version + 1 WHERE id = ?",
            (entity_type, json.dumps(list(observations)), ts, entity_id),
        )
        self.conn.execute(
            "UPDATE entity_vectors SET embedding = ? WHERE rowid = ?",
            (vector, entity_id),
        )

    def set_vector(self, entity_id: int, vector: bytes) -> None:
        """Replace one stored vector (reindex); call inside write()."""
        self.conn.execute(
            "UPDATE entity_vectors SET embedding = ? WHERE rowid = ?",
            (vector, entity_id),
        )

    def delete_entity(self, entity_id: int) -> bool:
        """Delete the entity, its vector and (by cascade) its relations."""
        self.conn.execute("DELETE FROM entity_vectors WHERE rowid = ?", (entity_id,))
        cursor = self.conn.execute("DELETE FROM entities WHERE id = ?", (entity_id,))
        return bool(cursor.rowcount)

    # --- entities (reads) ----------------------------------------------------------

    def get(self, entity_id: int) -> models.Entity | None:
        with self.lock:
            row = self.conn.execute(f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE id = ?", (entity_id,)).fetchone()
        return _entity(row) if row else None

    def get_many(self, ids: Sequence[int]) -> dict[int, models.Entity]:
        if not ids:
            return {}
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE id IN ({_marks(len(ids))})",
                tuple(ids),
            ).fetchall()
        return {row[0]: _entity(row) for row in rows}

    def find(self, key: tuple[str, str, str]) -> models.Entity | None:
        with self.lock:
            row = self.conn.execute(f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE {_KEY_SQL}", key).fetchone()
        return _entity(row) if row else None

    def find_keys(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], models.Entity]:
        found: dict[tuple[str, str, str], models.Entity] = {}
        for key in keys:
            entity = self.find(key)
            if entity is not None:
                found[key] = entity
        return found

    def select(
        self,
        *,
        name: str | None = None,
        scopes: Sequence[str] | None = None,
        owner: str | None = None,
        entity_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[models.Entity]:
        where, params = self._filters(name=name, scopes=scopes, owner=owner, entity_type=entity_type)
        sql = f"SELECT {_ENTITY_COLUMNS} FROM entities{where} ORDER BY id LIMIT ? OFFSET ?"
        with self.lock:
            rows = self.conn.execute(sql, (*params, limit, offset)).fetchall()
        return [_entity(row) for row in rows]

    def iter_entities(self, batch: int = 1000) -> Iterator[models.Entity]:
        """Every entity in id order, read in pages (export)."""
        last = 0
        while True:
            with self.lock:
                rows = self.conn.execute(
                    f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE id > ? ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            yield from (_entity(row) for row in rows)
            last = rows[-1][0]

    @staticmethod
    def _filters(**filters: Any) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if filters["name"] is not None:
            clauses.append("name = ?")
            params.append(filters["name"])
        if filters["scopes"]:
            clauses.append(f"scope IN ({_marks(len(filters['scopes']))})")
            params.extend(filters["scopes"])
        if filters["owner"] is not None:
            clauses.append("owner = ?")
            params.append(filters["owner"])
        if filters["entity_type"] is not None:
            clauses.append("entity_type = ?")
            params.append(filters["entity_type"])
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def count(self, owner: str | None = None) -> int:
        with self.lock:
            if owner is None:
                return int(self.conn.execute("SELECT count(*) FROM entities").fetchone()[0])
            return int(self.conn.execute("SELECT count(*) FROM entities WHERE owner = ?", (owner,)).fetchone()[0])

    def counts_by(self, column: str) -> dict[str, int]:
        if column not in ("scope", "entity_type", "owner"):
            raise ValueError(column)
        with self.lock:
            rows = self.conn.execute(f"SELECT {column}, count(*) FROM entities GROUP BY {column}").fetchall()
        return {str(key): int(count) for key, count in rows if key is not None}

    def vector_count(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM entity_vectors").fetchone()[0])

    def load_vectors(
        self,
    ) -> tuple[list[tuple[int, str, str | None, str]], npt.NDArray[np.float32]]:
        """(id, scope, owner, type) of every entity with its vector, for building the index."""
        import numpy as np

        with self.lock:
            rows = self.conn.execute(
                "SELECT e.id, e.scope, e.owner, e.entity_type, v.embedding "
                "FROM entities e JOIN entity_vectors v ON v.rowid = e.id ORDER BY e.id"
            ).fetchall()
        matrix = np.frombuffer(b"".join(row[4] for row in rows), dtype=np.float32).reshape(len(rows), 384)
        return [(row[0], row[1], row[2], row[3]) for row in rows], matrix

    # --- relations --------------------------------------------------------------------

    def upsert_relation(self, from_id: int, to_id: int, relation_type: str, strength: float, ts: str) -> int:
        """Create or update the one relation of this (from, to, type) triple; call inside write()."""
        self.conn.execute(
            "INSERT INTO relations (from_id, to_id, relation_type, strength, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (from_id, to_id, relation_type) "
            "DO UPDATE SET strength = excluded.strength, updated_at = excluded.updated_at",
            (from_id, to_id, relation_type, strength, ts, ts),
        )
        row = self.conn.execute(
            "SELECT id FROM relations WHERE from_id = ? AND to_id = ? AND relation_type = ?",
            (from_id, to_id, relation_type),
        ).fetchone()
        return int(row[0])

    def delete_relation(self, relation_id: int) -> bool:
        return bool(self.conn.execute("DELETE FROM relations WHERE id = ?", (relation_id,)).rowcount)

    def get_relation(self, relation_id: int) -> models.Relation | None:
        with self.lock:
            row = self.conn.execute(
                f"SELECT {_RELATION_COLUMNS} FROM relations WHERE id = ?",
                (relation_id,),
            ).fetchone()
        return _relation(row) if row else None

    def relations_touching(self, ids: Sequence[int]) -> list[models.Relation]:
        if not ids:
            return []
        marks = _marks(len(ids))
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_RELATION_COLUMNS} FROM relations WHERE from_id IN ({marks}) OR to_id IN ({marks}) "
                "ORDER BY id",
                (*ids, *ids),
            ).fetchall()
        return [_relation(row) for row in rows]

    def iter_relations(self) -> Iterator[models.Relation]:
        with self.lock:
            rows = self.conn.execute(f"SELECT {_RELATION_COLUMNS} FROM relations ORDER BY id").fetchall()
        yield from (_relation(row) for row in rows)

    def relation_count(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM relations").fetchone()[0])

    # --- metadata and maintenance -----------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Call inside write()."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def migrations(self) -> list[str]:
        with self.lock:
            return [row[0] for row in self.conn.execute("SELECT name FROM schema_migrations ORDER BY name")]

    def size_bytes(self) -> int:
        """Database plus its WAL file."""
        total = 0
        for suffix in ("", "-wal"):
            candidate = self.path.with_name(self.path.name + suffix)
            if candidate.exists():
                total += candidate.stat().st_size
        return total

    def vacuum(self) -> None:
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("VACUUM")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity(self) -> str:
        with self.lock:
            return str(self.conn.execute("PRAGMA quick_check").fetchone()[0])
