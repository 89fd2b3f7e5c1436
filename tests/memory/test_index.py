"""The in-memory index: exact and PCA+rescore search, filters, removal by swapping rows."""

from __future__ import annotations

import numpy as np
import pytest

from caxton.memory import embeddings, index


def _unit(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, index.DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _filled(vectors: np.ndarray) -> index.VectorIndex:
    built = index.VectorIndex()
    scopes = ("agent", "workspace", "global")
    rows = [(i + 1, scopes[i % 3], f"agent-{i % 2}" if i % 3 == 0 else None, f"t{i % 4}") for i in range(len(vectors))]
    built.build(rows, vectors)
    return built


def test_exact_search_returns_best_first_with_cosine_similarity() -> None:
    vectors = _unit(500)
    built = _filled(vectors)
    hits = built.search(vectors[41], 5)
    assert hits[0] == (42, pytest.approx(1.0, abs=1e-5))
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert not built.approximate


def test_filters_restrict_scope_type_and_other_agents_private_rows() -> None:
    vectors = _unit(300)
    built = _filled(vectors)
    query = vectors[0]
    ids = [i for i, _ in built.search(query, 300, index.Filter(scopes=["workspace"]))]
    assert ids and all((i - 1) % 3 == 1 for i in ids)
    ids = [i for i, _ in built.search(query, 300, index.Filter(types=["t2"]))]
    assert len(ids) == 75 and all((i - 1) % 4 == 2 for i in ids)
    ids = [i for i, _ in built.search(query, 300, index.Filter(agent="agent-0"))]
    private = [i for i in ids if (i - 1) % 3 == 0]
    assert private and all((i - 1) % 2 == 0 for i in private)
    assert built.search(query, 5, index.Filter(types=["unknown"])) == []


def test_remove_moves_the_last_row_and_keeps_ids_right() -> None:
    vectors = _unit(50)
    built = _filled(vectors)
    built.remove(10)
    built.remove(10)  # twice is harmless
    assert len(built) == 49
    assert all(i != 10 for i, _ in built.search(vectors[9], 49))
    assert built.search(vectors[49], 1)[0][0] == 50
    built.upsert(10, "global", None, "t0", vectors[9])
    assert built.search(vectors[9], 1)[0][0] == 10


def test_pca_search_keeps_recall_on_real_embeddings(
    embedder: embeddings.Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "PCA_MIN_ROWS", 100)
    words = [
        "invoice",
        "laptop",
        "contract",
        "server",
        "flight",
        "package",
        "lease",
        "garden",
        "website",
        "recipe",
    ]
    places = [
        "Paris",
        "Berlin",
        "Tokyo",
        "Nairobi",
        "Lima",
        "Oslo",
        "Toronto",
        "Sydney",
    ]
    texts = [
        f"The customer in {p} reported a problem with the {w} number {n}."
        for w in words
        for p in places
        for n in range(3)
    ]
    vectors = embedder.embed_batch(texts)
    built = _filled(vectors)
    assert built.approximate
    queries = embedder.embed_batch(["a broken laptop in Oslo", "lease dispute in Lima", "flight delayed to Tokyo"])
    recall = [
        len({i for i, _ in built.search(q, 10, candidates=60)} & {i for i, _ in built.exact(q, 10)}) / 10
        for q in queries
    ]
    assert min(recall) >= 0.9, recall
