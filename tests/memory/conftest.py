"""Fixtures of the memory tests: one real embedder per session, a fresh service per test.

Storage semantics are tested on both backends: ``memory_location`` (and so ``open_memory`` and
``memory``) is parametrised ``sqlite`` (a file in tmp_path) and ``postgres`` (a fresh database on the
session's real PostgreSQL + pgvector, tests/support/postgres.py), so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton.memory import embeddings, service
from caxton.spec.project import EngineMemorySettings

#: The migrations each backend records (``stats()["migrations"]``).
MIGRATIONS = {
    "sqlite": ["0001_entities_relations", "0002_entity_vectors"],
    "postgres": ["0001_entities_relations", "0002_hnsw_cosine"],
}

OpenMemory = Callable[..., service.MemoryService]


@pytest.fixture(scope="session")
def embedder() -> embeddings.Embedder:
    """The shipped all-MiniLM-L6-v2 (loaded once: ~0.5 s)."""
    loaded = embeddings.Embedder(embeddings.locate())
    loaded.load()
    return loaded


@pytest.fixture
def settings() -> EngineMemorySettings:
    return EngineMemorySettings()


@pytest.fixture(params=["sqlite", "postgres"])
def memory_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's memory lives: a SQLite file, or an empty PostgreSQL database with pgvector."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return tmp_path / "memory.db"


@pytest.fixture
def open_memory(memory_location: Path | str, embedder: embeddings.Embedder) -> Iterator[OpenMemory]:
    """``open_memory(settings=None, **kwargs)``: a service on this test's location (the session embedder
    unless ``embedder=`` is given); every one opened is closed after the test."""
    opened: list[service.MemoryService] = []

    def open_(settings: EngineMemorySettings | None = None, **kwargs: Any) -> service.MemoryService:
        kwargs.setdefault("embedder", embedder)
        memory = service.MemoryService(memory_location, settings or EngineMemorySettings(), **kwargs)
        opened.append(memory)
        return memory

    yield open_
    for memory in opened:
        memory.close()


@pytest.fixture
def memory(open_memory: OpenMemory, settings: EngineMemorySettings) -> service.MemoryService:
    return open_memory(settings)


@pytest.fixture
def memory_backend() -> str:
    """The backend of ``serve`` (tests/memory/test_api_cli.py), which that module parametrises over both."""
    return "sqlite"
