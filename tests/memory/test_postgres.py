"""The PostgreSQL backend beyond the shared tests: two services on one database, clear errors, no password
in any message, and where ``memory.backend`` finds its database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from caxton import errors
from caxton.memory import backend, embeddings, models, service
from caxton.spec.project import EngineMemorySettings
from caxton.spec.secrets import redact_url
from tests.support.paths import free_port
from tests.support.postgres import create_database, database_url, drop_database

E = models.EntityInput


@pytest.fixture
def two(pg_url: str, embedder: embeddings.Embedder) -> Iterator[Callable[..., tuple[service.MemoryService, ...]]]:
    """``two(settings=None)``: two services (as two engines would hold) on one fresh database."""
    opened: list[service.MemoryService] = []

    def open_(settings: EngineMemorySettings | None = None) -> tuple[service.MemoryService, ...]:
        pair = tuple(service.MemoryService(pg_url, settings or EngineMemorySettings(), embedder=embedder)
                     for _ in range(2))
        opened.extend(pair)
        return pair

    yield open_
    for memory in opened:
        memory.close()


def _run(workers: list[Callable[[], None]]) -> list[BaseException]:
    failures: list[BaseException] = []

    def guarded(work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_two_services_on_one_database_lose_no_writes(two: Callable[..., tuple[service.MemoryService, ...]]) -> None:
    first, second = two()
    note = first.create_entity(E("notes", "log"))

    def append(memory: service.MemoryService, who: str) -> Callable[[], None]:
        return lambda: [memory.update_entity(note.id, add_observations=[f"{who} {i}"]) for i in range(8)]

    assert _run([append(first, "a"), append(second, "b"), append(first, "c"), append(second, "d")]) == []
    final = second.get_entity(note.id)
    assert final.version == 33 and sorted(final.observations) == sorted(f"{w} {i}" for w in "abcd" for i in range(8))
    # each sees the other's writes at once, searches included (no per-process index to go stale)
    made = second.create_entity(E("bob", "person", ("Bob is a jazz pianist",)))
    assert first.search("who plays jazz piano?", k=1)[0].entity.id == made.id
    first.delete_entity(made.id)
    assert all(h.entity.id != made.id for h in second.search("who plays jazz piano?", k=2))


def test_the_entity_limit_holds_across_services(two: Callable[..., tuple[service.MemoryService, ...]]) -> None:
    first, second = two(EngineMemorySettings(max_entities=10))

    def fill(memory: service.MemoryService, who: str) -> Callable[[], None]:
        def work() -> None:
            for i in range(10):
                try:
                    memory.create_entity(E(f"{who}-{i}", "fact"))
                except errors.LimitExceeded:
                    return
        return work

    assert _run([fill(first, "a"), fill(second, "b")]) == []
    assert first.store.count() == 10


def test_an_unreachable_database_is_one_clear_error_without_the_password(embedder: embeddings.Embedder) -> None:
    url = f"postgresql://caxton:s3cret-pw@127.0.0.1:{free_port()}/memory"
    with pytest.raises(errors.Unavailable) as caught:
        service.MemoryService(url, EngineMemorySettings(), embedder=embedder)
    text = f"{caught.value.message} {caught.value.hint}"
    assert "s3cret-pw" not in text and "postgresql://caxton:***@127.0.0.1" in text and "unreachable" in text
    assert "memory.url" in (caught.value.hint or "")


def test_cut_connections_reconnect_and_a_database_that_goes_away_is_unhealthy_and_unavailable(
    pg_server_url: str, embedder: embeddings.Embedder
) -> None:
    url = create_database(pg_server_url)
    memory = service.MemoryService(url, EngineMemorySettings(), embedder=embedder)
    try:
        memory.create_entity(E("alice", "person", ("likes hiking",)))
        health = memory.health()
        assert health["status"] == "healthy" and health["backend"] == "postgres" and health["entities"] == 1
        assert health["server_version"] and health["pgvector"] and memory.gauges()[0] == 1
        with psycopg.connect(pg_server_url, autocommit=True) as admin:  # as a server restart does
            cut = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                                (urlsplit(url).path.lstrip("/"),)).fetchone()
        assert cut is not None and cut[0] >= 1
        assert memory.search("who likes hiking?", k=1)[0].entity.name == "alice"  # reconnected by itself
        drop_database(pg_server_url, url)  # WITH (FORCE): every pooled connection is cut
        health = memory.health()
        assert health["status"] == "unhealthy" and "is unreachable" in health["message"]
        with pytest.raises(errors.Unavailable):
            memory.search("hiking")
        assert memory.gauges() == (None, None)  # /metrics keeps answering
    finally:
        memory.close()


def test_a_database_without_pgvector_is_refused_with_the_fix(pg_server_url: str, embedder: embeddings.Embedder) -> None:
    name, role = f"cx_{uuid.uuid4().hex[:12]}", f"cx_role_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'hunter22'")
        admin.execute(f'CREATE DATABASE "{name}" OWNER {role}')
    url = database_url(pg_server_url, name).replace("postgres:@", f"{role}:hunter22@", 1)
    try:
        with pytest.raises(errors.Unavailable) as caught:
            service.MemoryService(url, EngineMemorySettings(), embedder=embedder)
        assert "has no pgvector" in caught.value.message and "hunter22" not in caught.value.message
        assert "CREATE EXTENSION vector" in (caught.value.hint or "")
    finally:
        drop_database(pg_server_url, database_url(pg_server_url, name))
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def test_where_the_memory_lives(tmp_path: Path) -> None:
    assert backend.location(EngineMemorySettings(), tmp_path, None) == tmp_path / "memory.db"
    settings = EngineMemorySettings(backend="postgres")
    assert backend.location(settings, tmp_path, "postgresql://h/db") == "postgresql://h/db"  # the state store's URL
    given = EngineMemorySettings(backend="postgres", url="postgresql://u:p@h/mem")
    assert backend.location(given, tmp_path, "postgresql://h/db") == "postgresql://u:p@h/mem"
    with pytest.raises(errors.InvalidInput, match="no PostgreSQL URL") as caught:
        backend.location(settings, tmp_path, None)
    assert "memory.url" in (caught.value.hint or "")
    assert redact_url("postgresql://u:p%40ss@h:5432/db?x=1") == "postgresql://u:***@h:5432/db?x=1"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
