"""The PostgreSQL memory's HNSW index: searches go through it, filtered searches keep their recall when the filter
keeps a small fraction of the rows (iterative scans, then the exact fallback), and the first slice's layout
(an exact scan over a stored halfvec copy) migrates to it with its rows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from caxton.memory import embeddings, index, models, pgschema, pgstore, schema, service
from caxton.spec.project import EngineMemorySettings

ROWS = 1500
RARE_TYPE_EVERY = 50  # 2 % of the rows: type "rare"
WORKSPACE_EVERY = 40  # 2.5 %: workspace scope (the rest global), and 4 rows of agent "solo"
rng = np.random.default_rng(14)


BASIS = rng.standard_normal((24, embeddings.DIMENSIONS))


def _unit(n: int) -> np.ndarray:
    """Unit vectors spread over a 24-dimension subspace plus noise: sentence embeddings have a low intrinsic
    dimension too (uniform random 384-dimension vectors, with no near neighbours, are not what is searched)."""
    vectors = rng.standard_normal((n, 24)) @ BASIS + 0.3 * rng.standard_normal((n, embeddings.DIMENSIONS))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


VECTORS = _unit(ROWS)
QUERIES = _unit(20)


def _item(i: int) -> models.EntityInput:
    kind = "rare" if i % RARE_TYPE_EVERY == 0 else "common"
    if i < 4:
        return models.EntityInput(f"e{i}", kind, ("x",), "agent", "solo")
    return models.EntityInput(f"e{i}", kind, ("x",), "workspace" if i % WORKSPACE_EVERY == 1 else "global", None)


@pytest.fixture(scope="module")
def filled(pg_server_url: str) -> Iterator[tuple[pgstore.PgStore, dict[int, int]]]:
    """One database of ROWS unit vectors (module-scoped: the HNSW inserts are the slow part); its store and row
    number -> entity id. Sequential and bitmap scans are off in it, so the planner takes the HNSW index for
    every search, as it does on a big table (on 1,500 rows it would often scan and sort the filtered rows)."""
    from tests.support.postgres import create_database, drop_database

    url = create_database(pg_server_url)
    with psycopg.connect(url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        assert name is not None
        for setting in ("enable_seqscan", "enable_bitmapscan"):
            conn.execute(f'ALTER DATABASE "{name[0]}" SET {setting} = off')
    store = pgstore.PgStore(url)
    ids: dict[int, int] = {}
    with store.write():
        for i in range(ROWS):
            ids[i] = store.insert_entity(_item(i), VECTORS[i].tobytes(), schema.now())
    store.vacuum()
    try:
        yield store, ids
    finally:
        store.close()
        drop_database(pg_server_url, url)


def _exact(allowed: list[int], query: np.ndarray, ids: dict[int, int], k: int = 10) -> list[int]:
    scores = VECTORS[allowed] @ query
    return [ids[allowed[i]] for i in np.argsort(-scores)[:k]]


def _recall(store: pgstore.PgStore, ids: dict[int, int], allowed: list[int], where: index.Filter | None) -> float:
    found = [len({i for i, _ in store.nearest(q, 10, where)} & set(_exact(allowed, q, ids))) for q in QUERIES]
    return sum(found) / (10 * len(QUERIES))


def _filtered(store: pgstore.PgStore, where: str, iterative: bool) -> tuple[str, list[int]]:
    """(the plan, the ids) of the filtered query :meth:`PgStore.nearest` sends first, with its settings."""
    sql = (f"SELECT id FROM memory_entities WHERE embedding IS NOT NULL{where} "
           "ORDER BY embedding <=> %s::vector(384) LIMIT 10")
    with store.connection() as conn:
        for statement in pgstore.search_settings(10, iterative=iterative):
            conn.execute(statement)
        if not iterative:  # the pooled connection may hold an earlier search's setting
            conn.execute("SET hnsw.iterative_scan = off")
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}", (QUERIES[0],)).fetchall())
        ids = [row[0] for row in conn.execute(sql, (QUERIES[0],)).fetchall()]
    return plan, ids


def test_searches_go_through_the_hnsw_index_with_high_recall(filled: tuple[pgstore.PgStore, dict[int, int]]) -> None:
    store, ids = filled
    plan, found = _filtered(store, "", iterative=True)
    assert "Index Scan using memory_entities_embedding" in plan and len(found) == 10
    assert _recall(store, ids, list(range(ROWS)), None) >= 0.95
    hits = store.nearest(VECTORS[123], 10, None)
    assert hits[0][0] == ids[123] and hits[0][1] == pytest.approx(1.0, abs=1e-6)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_iterative_scans_fill_k_from_the_graph_under_a_small_filter(
    filled: tuple[pgstore.PgStore, dict[int, int]]
) -> None:
    """2 % of the rows are "rare": the first 40 graph candidates hold ~1 of them; the iterative scan goes on."""
    store, _ = filled
    assert store._iterative  # the test server's pgvector is 0.8
    plan, plain = _filtered(store, " AND entity_type = 'rare'", iterative=False)
    assert "Index Scan using memory_entities_embedding" in plan and len(plain) < 10
    _, iterative = _filtered(store, " AND entity_type = 'rare'", iterative=True)
    assert len(iterative) == 10


def test_a_filter_keeping_a_small_fraction_keeps_its_recall(filled: tuple[pgstore.PgStore, dict[int, int]]) -> None:
    store, ids = filled
    rare = [i for i in range(ROWS) if _item(i).entity_type == "rare"]
    assert _recall(store, ids, rare, index.Filter(types=["rare"])) >= 0.95
    workspace = [i for i in range(ROWS) if _item(i).scope == "workspace"]
    assert _recall(store, ids, workspace, index.Filter(scopes=["workspace"])) >= 0.95


def test_a_filter_matching_fewer_than_k_returns_all_of_them(filled: tuple[pgstore.PgStore, dict[int, int]]) -> None:
    store, ids = filled
    own = store.nearest(QUERIES[0], 10, index.Filter(scopes=["agent"], agent="solo"))
    assert sorted(i for i, _ in own) == sorted(ids[i] for i in range(4))
    assert store.nearest(QUERIES[0], 10, index.Filter(scopes=["agent"], agent="nobody")) == []


def test_without_iterative_scans_the_exact_fallback_fills_k(
    filled: tuple[pgstore.PgStore, dict[int, int]]
) -> None:
    """pgvector < 0.8 (no iterative scans): the graph's 40 candidates hold too few rows of a small filter, so
    :meth:`PgStore.nearest` repeats the search exactly over the filtered rows."""
    shared, ids = filled
    store = pgstore.PgStore(shared.url)  # fresh connections: no earlier search's iterative_scan on them
    try:
        store._iterative = False
        _, plain = _filtered(store, " AND entity_type = 'rare'", iterative=False)
        assert len(plain) < 10
        rare = [i for i in range(ROWS) if _item(i).entity_type == "rare"]
        assert _recall(store, ids, rare, index.Filter(types=["rare"])) == 1.0
        own = store.nearest(QUERIES[0], 10, index.Filter(scopes=["agent"], agent="solo"))
        assert sorted(i for i, _ in own) == sorted(ids[i] for i in range(4))
        with store.connection() as conn:
            assert conn.execute("SHOW hnsw.iterative_scan").fetchone() == ("off",)
    finally:
        store.close()


def test_ef_search_grows_with_k_within_pgvectors_bounds() -> None:
    assert pgstore.ef_search(1) == pgstore.EF_SEARCH_MIN
    assert pgstore.ef_search(10) == max(pgstore.EF_SEARCH_MIN, 10 * pgstore.EF_SEARCH_PER_K)
    assert pgstore.ef_search(100) == 100 * pgstore.EF_SEARCH_PER_K
    assert pgstore.ef_search(10_000) == pgstore.EF_SEARCH_MAX == 1000


def test_the_first_slices_halfvec_layout_migrates_to_hnsw_with_its_rows(
    pg_url: str, embedder: embeddings.Embedder
) -> None:
    pgschema.migrate(pg_url, pgschema.MIGRATIONS[:1])  # the layout the first slice wrote
    first = embedder.embed_batch(["the invoice was paid late", "a red bicycle with a basket"])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        register_vector(conn)
        for name, vector in zip(("invoice", "bicycle"), first, strict=True):
            conn.execute("INSERT INTO memory_entities (name, entity_type, observations, scope, created_at, "
                         "updated_at, embedding) VALUES (%s, 'fact', '[\"x\"]', 'global', 'then', 'then', %s)",
                         (name, vector))
        assert conn.execute("SELECT count(embedding_half) FROM memory_entities").fetchone() == (2,)

    memory = service.MemoryService(pg_url, EngineMemorySettings(), embedder=embedder)
    try:
        assert memory.stats()["migrations"] == ["0001_entities_relations", "0002_hnsw_cosine"]
        assert memory.stats()["index"]["mode"] == "pgvector-hnsw"
        hits = memory.search("who paid the invoice", k=2)
        assert [hit.entity.name for hit in hits] == ["invoice", "bicycle"]
        assert hits[0].similarity == pytest.approx(float(first[0] @ embedder.embed("who paid the invoice")), abs=1e-6)
    finally:
        memory.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        columns = {row[0] for row in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = "
                                                  "'memory_entities'::regclass AND attnum > 0 AND NOT attisdropped")}
        indexdef = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'memory_entities_embedding'"
                                ).fetchone()
    assert "embedding_half" not in columns and "embedding" in columns
    assert indexdef is not None and "hnsw (embedding vector_cosine_ops)" in indexdef[0]
    assert "m='16'" in indexdef[0] and "ef_construction='64'" in indexdef[0]
