"""Fixtures of the memory tests: one real embedder per session, a fresh service per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from caxton.memory import embeddings, service
from caxton.spec.project import EngineMemorySettings


@pytest.fixture(scope="session")
def embedder() -> embeddings.Embedder:
    """The shipped all-MiniLM-L6-v2 (loaded once: ~0.5 s)."""
    loaded = embeddings.Embedder(embeddings.locate())
    loaded.load()
    return loaded


@pytest.fixture
def settings() -> EngineMemorySettings:
    return EngineMemorySettings()


@pytest.fixture
def memory(
    tmp_path: Path, settings: EngineMemorySettings, embedder: embeddings.Embedder
) -> Iterator[service.MemoryService]:
    opened = service.MemoryService(tmp_path / "memory.db", settings, embedder=embedder)
    yield opened
    opened.close()
