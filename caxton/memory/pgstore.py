"""PostgreSQL + pgvector storage of the memory (``memory.backend: postgres``).

The second :class:`caxton.memory.backend.MemoryStore`: the same entities,
relations, scopes and metadata as :mod:`caxton.memory.store`, with each vector
in a ``vector(384)`` column searched in the database through its HNSW index
(cosine; :mod:`caxton.memory.pgschema`), so every engine on the database sees
every write at once (no in-memory index to keep in step). psycopg 3 with a
psycopg_pool pool; no ORM.

Search (:meth:`PgStore.nearest`): the query goes with ``SET hnsw.ef_search`` from
``k`` (:func:`ef_search`) and, with pgvector >= 0.8, ``hnsw.iterative_scan`` in one
pipelined round trip (under load every round trip waits for the scheduler), so a
filter that keeps a small fraction of the rows (one scope, one agent) still
fills ``k`` from the graph instead of dropping what the first candidates did
not match. When the index still yields fewer than ``k`` rows (a filter matching
almost nothing: the iterative scan stops at ``hnsw.max_scan_tuples``), the
search is repeated exactly over the rows the filter allows (selected first, in a
materialised CTE the graph cannot serve), so a small scope is never
short-changed. The hits' similarities are computed here from their float32
vectors, the SQLite backend's arithmetic.

Transactions: :meth:`PgStore.write` takes a pooled connection, opens a
transaction and the writers' advisory lock (``pg_advisory_xact_lock``): writers
are serialised across engines as SQLite serialises them in one file, so the
limit checks and version checks made inside it hold. Every read made on the
writing thread inside it uses that transaction's connection. A database that
does not answer raises :class:`caxton.errors.Unavailable` (its URL's password
never shown); a full disk raises :class:`caxton.errors.StorageFull`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from caxton import errors
from caxton.memory import models, pgschema
from caxton.spec.secrets import redact_url

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from caxton.memory.index import Filter

_ENTITY_COLUMNS = "id, name, entity_type, observations, scope, owner, created_at, updated_at, version"
_RELATION_COLUMNS = "id, from_id, to_id, relation_type, strength, created_at, updated_at"
_KEY_SQL = "scope = %s AND (CASE WHEN scope = 'agent' THEN owner ELSE '' END) = %s AND name = %s"
POOL_SIZE = 8
#: Seconds a request waits for a connection before the database counts as unreachable.
CONNECT_TIMEOUT = 5
#: ``hnsw.ef_search`` for a search of ``k``: at least pgvector's default, ``EF_SEARCH_PER_K`` per result,
#: at most pgvector's maximum (recall@10 vs ef_search measured in docs/performance.md).
EF_SEARCH_MIN = 40
EF_SEARCH_PER_K = 4
EF_SEARCH_MAX = 1000


def ef_search(k: int) -> int:
    """The HNSW candidate list for a search of ``k`` results."""
    return max(EF_SEARCH_MIN, min(EF_SEARCH_MAX, EF_SEARCH_PER_K * k))


def _entity(row: Sequence[Any]) -> models.Entity:
    return models.Entity(id=row[0], name=row[1], entity_type=row[2], observations=tuple(row[3]), scope=row[4],
                         owner=row[5], created_at=row[6], updated_at=row[7], version=row[8])


def _relation(row: Sequence[Any]) -> models.Relation:
    return models.Relation(*row)


def _vector(data: bytes) -> npt.NDArray[np.float32]:
    import numpy as np

    return np.frombuffer(data, dtype=np.float32)


def _configure(conn: Any) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)


class PgStore:
    """The memory tables in one PostgreSQL database (shared by every engine that names it)."""

    backend = "postgres"

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self.location = redact_url(url)
        self.lock = threading.RLock()
        self._local = threading.local()
        pgschema.migrate(url)
        # check: a connection cut by a server restart is replaced at checkout, not handed out broken
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False, configure=_configure,
                                   check=ConnectionPool.check_connection, name="caxton-memory",
                                   kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT})
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except Exception as exc:  # PoolTimeout: no connection could be made
            self.pool.close()
            raise pgschema.unreachable(url, exc) from exc
        #: pgvector >= 0.8: HNSW iterative scans for filtered searches.
        self._iterative = pgschema.version_tuple(self.health()["pgvector"]) >= (0, 8)

    def close(self) -> None:
        self.pool.close()

    def open_index(self) -> PgIndex:
        return PgIndex(self)

    # --- connections and transactions -------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """The writing transaction's connection on this thread, else one from the pool."""
        import psycopg

        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self.pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                yield conn
        except psycopg.errors.DiskFull as exc:
            raise self._full(exc) from exc
        except psycopg.OperationalError as exc:
            raise pgschema.unreachable(self.url, exc) from exc

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.connection() as conn:
            return list(conn.execute(sql, params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.connection() as conn:
            return conn.execute(sql, params).fetchone()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction holding the writers' advisory lock, rolled back on any error."""
        with self.lock:
            if getattr(self._local, "conn", None) is not None:
                raise RuntimeError("nested memory write transaction")
            with self.connection() as conn:
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (pgschema.WRITE_LOCK,))
                        self._local.conn = conn
                        try:
                            yield
                        finally:
                            self._local.conn = None
                except Exception as exc:
                    import psycopg

                    if isinstance(exc, psycopg.errors.DiskFull):
                        raise self._full(exc) from exc
                    if isinstance(exc, psycopg.OperationalError):
                        raise pgschema.unreachable(self.url, exc) from exc
                    raise

    def _full(self, exc: BaseException) -> errors.StorageFull:
        return errors.StorageFull(f"the memory database {self.location} is full: {str(exc).strip()}",
                                  hint="free space on the PostgreSQL server's volume, then retry")

    # --- entities (writes: call inside write()) ---------------------------------

    def insert_entity(self, item: models.EntityInput, vector: bytes, ts: str) -> int:
        from psycopg.types.json import Jsonb

        row = self._one(
            "INSERT INTO memory_entities (name, entity_type, observations, scope, owner, created_at, updated_at, "
            "embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %b) RETURNING id",
            (item.name, item.entity_type, Jsonb(list(item.observations)), item.scope, item.owner, ts, ts,
             _vector(vector)),
        )
        return int(row[0])

    def replace_entity(self, entity_id: int, entity_type: str, observations: Sequence[str], vector: bytes,
                       ts: str) -> None:
        from psycopg.types.json import Jsonb

        self._one(
            "UPDATE memory_entities SET entity_type = %s, observations = %s, updated_at = %s, "
            "version = version + 1, embedding = %b WHERE id = %s RETURNING id",
            (entity_type, Jsonb(list(observations)), ts, _vector(vector), entity_id),
        )

    def set_vector(self, entity_id: int, vector: bytes) -> None:
        self._one("UPDATE memory_entities SET embedding = %b WHERE id = %s RETURNING id", (_vector(vector), entity_id))

    def delete_entity(self, entity_id: int) -> bool:
        """Delete the entity with its vector and (by cascade) its relations."""
        return self._one("DELETE FROM memory_entities WHERE id = %s RETURNING id", (entity_id,)) is not None

    # --- entities (reads) ----------------------------------------------------------

    def get(self, entity_id: int) -> models.Entity | None:
        row = self._one(f"SELECT {_ENTITY_COLUMNS} FROM memory_entities WHERE id = %s", (entity_id,))
        return _entity(row) if row else None

    def get_many(self, ids: Sequence[int]) -> dict[int, models.Entity]:
        if not ids:
            return {}
        rows = self._fetch(f"SELECT {_ENTITY_COLUMNS} FROM memory_entities WHERE id = ANY(%s)", (list(ids),))
        return {row[0]: _entity(row) for row in rows}

    def find(self, key: tuple[str, str, str]) -> models.Entity | None:
        row = self._one(f"SELECT {_ENTITY_COLUMNS} FROM memory_entities WHERE {_KEY_SQL}", key)
        return _entity(row) if row else None

    def find_keys(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], models.Entity]:
        found: dict[tuple[str, str, str], models.Entity] = {}
        for key in keys:
            entity = self.find(key)
            if entity is not None:
                found[key] = entity
        return found

    def select(self, *, name: str | None = None, scopes: Sequence[str] | None = None, owner: str | None = None,
               entity_type: str | None = None, limit: int = 100, offset: int = 0) -> list[models.Entity]:
        where, params = _filters(name=name, scopes=scopes, owner=owner, entity_type=entity_type)
        rows = self._fetch(f"SELECT {_ENTITY_COLUMNS} FROM memory_entities{where} ORDER BY id LIMIT %s OFFSET %s",
                           (*params, limit, offset))
        return [_entity(row) for row in rows]

    def iter_entities(self, batch: int = 1000) -> Iterator[models.Entity]:
        """Every entity in id order, read in pages (export)."""
        last = 0
        while True:
            rows = self._fetch(f"SELECT {_ENTITY_COLUMNS} FROM memory_entities WHERE id > %s ORDER BY id LIMIT %s",
                               (last, batch))
            if not rows:
                return
            yield from (_entity(row) for row in rows)
            last = rows[-1][0]

    def count(self, owner: str | None = None) -> int:
        if owner is None:
            return int(self._one("SELECT count(*) FROM memory_entities")[0])
        return int(self._one("SELECT count(*) FROM memory_entities WHERE owner = %s", (owner,))[0])

    def counts_by(self, column: str) -> dict[str, int]:
        if column not in ("scope", "entity_type", "owner"):
            raise ValueError(column)
        rows = self._fetch(f"SELECT {column}, count(*) FROM memory_entities GROUP BY {column}")
        return {str(key): int(count) for key, count in rows if key is not None}

    def vector_count(self) -> int:
        return int(self._one("SELECT count(embedding) FROM memory_entities")[0])

    # --- search (PgIndex) -----------------------------------------------------------------

    def nearest(self, query: npt.NDArray[np.float32], k: int, where: Filter | None) -> list[tuple[int, float]]:
        """Top ``k`` (id, cosine similarity) through the HNSW index; exact over the filtered rows when the
        index yields fewer than ``k`` (see the module docstring)."""
        clauses, params = _search_filters(where)
        rows_sql = f"SELECT id, embedding FROM memory_entities WHERE embedding IS NOT NULL{clauses}"
        with self.connection() as conn, conn.pipeline():  # the settings and the query in one round trip
            for statement in search_settings(k, iterative=self._iterative):
                conn.execute(statement)
            rows = conn.execute(f"{rows_sql} ORDER BY embedding <=> %b::vector(384) LIMIT %s",
                                (*params, query, k)).fetchall()
            if len(rows) < k and clauses:  # the filter first (any scan but the graph), then exact distances
                rows = conn.execute(f"WITH allowed AS MATERIALIZED ({rows_sql}) SELECT id, embedding FROM allowed "
                                    "ORDER BY embedding <=> %b::vector(384) LIMIT %s", (*params, query, k)).fetchall()
        return _rescored(rows, query, k)

    # --- relations --------------------------------------------------------------------

    def upsert_relation(self, from_id: int, to_id: int, relation_type: str, strength: float, ts: str) -> int:
        """Create or update the one relation of this (from, to, type) triple; call inside write()."""
        row = self._one(
            "INSERT INTO memory_relations (from_id, to_id, relation_type, strength, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (from_id, to_id, relation_type) "
            "DO UPDATE SET strength = excluded.strength, updated_at = excluded.updated_at RETURNING id",
            (from_id, to_id, relation_type, strength, ts, ts),
        )
        return int(row[0])

    def delete_relation(self, relation_id: int) -> bool:
        return self._one("DELETE FROM memory_relations WHERE id = %s RETURNING id", (relation_id,)) is not None

    def get_relation(self, relation_id: int) -> models.Relation | None:
        row = self._one(f"SELECT {_RELATION_COLUMNS} FROM memory_relations WHERE id = %s", (relation_id,))
        return _relation(row) if row else None

    def relations_touching(self, ids: Sequence[int]) -> list[models.Relation]:
        if not ids:
            return []
        rows = self._fetch(f"SELECT {_RELATION_COLUMNS} FROM memory_relations WHERE from_id = ANY(%s) "
                           "OR to_id = ANY(%s) ORDER BY id", (list(ids), list(ids)))
        return [_relation(row) for row in rows]

    def iter_relations(self) -> Iterator[models.Relation]:
        yield from (_relation(row) for row in self._fetch(f"SELECT {_RELATION_COLUMNS} FROM memory_relations "
                                                          "ORDER BY id"))

    def relation_count(self) -> int:
        return int(self._one("SELECT count(*) FROM memory_relations")[0])

    # --- metadata and maintenance -----------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM memory_meta WHERE key = %s", (key,))
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Call inside write()."""
        with self.connection() as conn:
            conn.execute("INSERT INTO memory_meta (key, value) VALUES (%s, %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def migrations(self) -> list[str]:
        return [str(row[0]) for row in self._fetch("SELECT name FROM memory_migrations ORDER BY name")]

    def size_bytes(self) -> int:
        """The memory tables with their indexes and TOAST."""
        row = self._one("SELECT sum(pg_total_relation_size(t)) FROM unnest(ARRAY['memory_entities', "
                        "'memory_relations', 'memory_meta']::regclass[]) AS t")
        return int(row[0] or 0)

    def vacuum(self) -> None:
        with self.connection() as conn:
            conn.execute("VACUUM (ANALYZE) memory_entities, memory_relations, memory_meta")

    def integrity(self) -> str:
        """PostgreSQL has no quick_check: the server answers and every migration is applied."""
        missing = [name for name, _ in pgschema.MIGRATIONS if name not in self.migrations()]
        return "ok" if not missing else f"migrations not applied: {', '.join(missing)}"

    def health(self) -> dict[str, object]:
        """The server's version, pgvector's version and the pool (raises Unavailable when it does not answer)."""
        row = self._one("SELECT current_setting('server_version'), (SELECT extversion FROM pg_extension "
                        "WHERE extname = 'vector')")
        stats = self.pool.get_stats()
        return {"backend": self.backend, "database": self.location, "server_version": row[0], "pgvector": row[1],
                "pool": {"size": stats.get("pool_size", 0), "available": stats.get("pool_available", 0),
                         "max": self.pool.max_size}}


def search_settings(k: int, *, iterative: bool) -> list[str]:
    """The settings of a search of ``k`` (``iterative``: pgvector >= 0.8's iterative scans). Set on the
    connection, not per transaction: every search sets them again, and nothing else uses the index."""
    settings = [f"SET hnsw.ef_search = {ef_search(k)}"]
    return settings + (["SET hnsw.iterative_scan = relaxed_order"] if iterative else [])


def _rescored(rows: Sequence[Any], query: npt.NDArray[np.float32], k: int) -> list[tuple[int, float]]:
    """(id, similarity) best first, the similarity computed from the row's float32 vector."""
    import numpy as np

    if not rows:
        return []
    vectors = np.stack([row[1].to_numpy() for row in rows]).astype(np.float32, copy=False)
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(rows[i][0]), float(scores[i])) for i in order]


def _filters(**filters: Any) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters["name"] is not None:
        clauses.append("name = %s")
        params.append(filters["name"])
    if filters["scopes"]:
        clauses.append("scope = ANY(%s)")
        params.append(list(filters["scopes"]))
    if filters["owner"] is not None:
        clauses.append("owner = %s")
        params.append(filters["owner"])
    if filters["entity_type"] is not None:
        clauses.append("entity_type = %s")
        params.append(filters["entity_type"])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _search_filters(where: Filter | None) -> tuple[str, list[Any]]:
    """``AND ...`` clauses of a search: the same rules as :meth:`caxton.memory.index.VectorIndex._mask`."""
    if where is None:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    if where.scopes is not None:
        clauses.append("scope = ANY(%s)")
        params.append(list(where.scopes))
    if where.types is not None:
        clauses.append("entity_type = ANY(%s)")
        params.append(list(where.types))
    if where.agent is not None:
        clauses.append("(scope <> 'agent' OR owner = %s)")
        params.append(where.agent)
    return "".join(f" AND {c}" for c in clauses), params


class PgIndex:
    """The search side of :class:`PgStore`: searches run in the database, nothing is held in this process."""

    approximate = True

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return self.store.vector_count()

    def upsert(self, entity_id: int, scope: str, owner: str | None, entity_type: str,
               vector: npt.NDArray[np.float32]) -> None:
        """Nothing to do: the row's vector was written in the same transaction."""

    def remove(self, entity_id: int) -> None:
        """Nothing to do: the row's vector was deleted with it."""

    def search(self, query: npt.NDArray[np.float32], k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        return self.store.nearest(query, k, where) if k > 0 else []
