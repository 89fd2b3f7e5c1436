"""The memory facade: CRUD, limits, scopes, search, graph, stats, health, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from caxton import errors, metrics
from caxton.memory import models, service
from caxton.spec.project import EngineMemorySettings
from tests.memory.conftest import MIGRATIONS, OpenMemory

E = models.EntityInput


def _seed(memory: service.MemoryService) -> list[models.Entity]:
    return memory.create_entities(
        [
            E("alice", "person", ("Alice likes hiking in the Alps",)),
            E("bob", "person", ("Bob is a jazz pianist who plays in clubs",)),
            E("paris", "city", ("Paris is the capital of France",), "global"),
        ]
    )


def test_create_get_update_delete_roundtrip(memory: service.MemoryService) -> None:
    alice, bob, _ = _seed(memory)
    assert memory.get_entity(alice.id).observations == ("Alice likes hiking in the Alps",)
    updated = memory.update_entity(alice.id, add_observations=["Alice moved to Lyon"], expected_version=1)
    assert updated.version == 2 and updated.observations[-1] == "Alice moved to Lyon"
    with pytest.raises(errors.Conflict, match="version 2, not 1"):
        memory.update_entity(alice.id, entity_type="human", expected_version=1)
    memory.delete_entity(bob.id)
    with pytest.raises(errors.NotFound):
        memory.get_entity(bob.id)
    with pytest.raises(errors.NotFound):
        memory.delete_entity(bob.id)
    assert memory.store.vector_count() == memory.store.count() == 2


def test_creating_an_existing_name_conflicts_unless_merged(
    memory: service.MemoryService,
) -> None:
    _seed(memory)
    with pytest.raises(errors.Conflict, match="already exist: alice"):
        memory.create_entity(E("alice", "person", ("again",)))
    (same,) = memory.create_entities([E("alice", "person", ("replaced",))], merge="update")
    assert same.observations == ("replaced",) and same.version == 2
    (kept,) = memory.create_entities([E("alice", "robot", ("ignored",))], merge="skip")
    assert kept.entity_type == "person"
    # the same name in another scope is another entity
    assert memory.create_entity(E("alice", "person", (), "agent", "bot")).id != same.id


def test_oversized_observation_and_batch_are_413_and_store_nothing(open_memory: OpenMemory) -> None:
    memory = open_memory(EngineMemorySettings(max_observation_size=100, max_batch_size=3))
    with pytest.raises(errors.PayloadTooLarge) as caught:
        memory.create_entities([E("ok", "t", ("fine",)), E("big", "t", ("x" * 101,))])
    assert caught.value.http_status == 413
    with pytest.raises(errors.PayloadTooLarge, match="batch of 4"):
        memory.create_entities([E(f"e{i}", "t") for i in range(4)])
    assert memory.store.count() == 0 and memory.store.vector_count() == 0


def test_global_and_per_agent_entity_limits(open_memory: OpenMemory) -> None:
    memory = open_memory(EngineMemorySettings(max_entities=3))
    memory.set_agent_limits({"bot": 1, "other": None})
    memory.create_entity(E("mine", "note", (), "agent", "bot"))
    with pytest.raises(errors.LimitExceeded, match="agent 'bot' would own 2"):
        memory.create_entity(E("more", "note", (), "workspace", "bot"))
    memory.create_entities([E("a", "note"), E("b", "note")])
    with pytest.raises(errors.LimitExceeded, match="would hold 4 entities; the limit is 3") as caught:
        memory.create_entity(E("c", "note"))
    assert caught.value.http_status == 409
    assert memory.store.count() == 3


def test_invalid_input_is_refused(memory: service.MemoryService) -> None:
    with pytest.raises(errors.InvalidInput, match="needs an owner"):
        memory.create_entity(E("x", "note", (), "agent"))
    with pytest.raises(errors.InvalidInput, match="unknown memory scope"):
        memory.create_entity(E("x", "note", (), "team"))  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInput, match="appears twice"):
        memory.create_entities([E("x", "note"), E("x", "note")])
    with pytest.raises(errors.InvalidInput, match="name must be"):
        memory.create_entity(E(" ", "note"))


def test_search_reports_similarity_with_filters(memory: service.MemoryService) -> None:
    _seed(memory)
    hits = memory.search("who plays music?", k=3)
    assert hits[0].entity.name == "bob"
    assert hits[0].similarity > hits[-1].similarity and -1.0 <= hits[-1].similarity <= 1.0
    assert [h.entity.name for h in memory.search("who plays music?", k=3, types=["city"])] == ["paris"]
    assert [h.entity.name for h in memory.search("music", k=3, scopes=["global"])] == ["paris"]
    assert all(h.similarity >= 0.3 for h in memory.search("jazz piano", k=3, min_similarity=0.3))
    with pytest.raises(errors.InvalidInput):
        memory.search("x", k=0)


def test_search_duration_is_recorded(memory: service.MemoryService) -> None:
    before = metrics.REGISTRY.get_sample_value("caxton_memory_search_duration_seconds_count") or 0.0
    memory.search("anything", k=1)
    assert metrics.REGISTRY.get_sample_value("caxton_memory_search_duration_seconds_count") == before + 1


def test_lookup_by_name_and_neighbours(memory: service.MemoryService) -> None:
    alice, bob, paris = _seed(memory)
    assert [e.id for e in memory.lookup("bob")] == [bob.id]
    assert memory.lookup("bob", scope="global") == []
    memory.relate(alice.id, bob.id, "knows", 0.5)
    again = memory.relate(alice.id, bob.id, "knows", 0.9)
    assert again.strength == 0.9 and len(memory.relations()) == 1
    memory.relate(bob.id, paris.id, "lives_in")
    assert {e.name for e in memory.neighbours(alice.id, 1).entities} == {"alice", "bob"}
    graph = memory.neighbours(alice.id, 2)
    assert {e.name for e in graph.entities} == {"alice", "bob", "paris"} and len(graph.relations) == 2
    with pytest.raises(errors.NotFound):
        memory.relate(alice.id, 999, "knows")
    with pytest.raises(errors.InvalidInput):
        memory.relate(alice.id, bob.id, "knows", 2.0)


def test_deleting_an_entity_deletes_its_relations_and_vector(
    memory: service.MemoryService,
) -> None:
    alice, bob, paris = _seed(memory)
    memory.relate(alice.id, bob.id, "knows")
    memory.relate(bob.id, paris.id, "lives_in")
    memory.delete_entity(bob.id)
    assert memory.relations() == []
    assert memory.store.vector_count() == 2
    assert all(h.entity.id != bob.id for h in memory.search("jazz pianist", k=3))


def test_agent_scope_is_private_workspace_and_global_nest(
    memory: service.MemoryService,
) -> None:
    memory.remember("bot", "agent", "c1", "My favourite colour is blue", "Noted.")
    memory.remember(
        "shared",
        "workspace",
        "c2",
        "The office wifi password is rotated on Mondays",
        "OK",
    )
    memory.create_entity(E("handbook", "doc", ("The office wifi is named caxton-guest",), "global"))
    query = "what is my favourite colour? what about the office wifi?"
    assert "favourite colour is blue" in memory.context_for("bot", "agent", query, 5, 0.0)
    assert "wifi" not in memory.context_for("bot", "agent", query, 5, 0.0)
    assert memory.context_for("spy", "agent", query, 5, 0.0) == ""
    workspace = memory.context_for("spy", "workspace", query, 5, 0.0)
    assert "rotated on Mondays" in workspace and "colour" not in workspace and "caxton-guest" not in workspace
    everything = memory.context_for("spy", "global", query, 5, 0.0)
    assert "rotated on Mondays" in everything and "caxton-guest" in everything and "colour" not in everything


def test_remember_appends_to_one_conversation_entity(
    memory: service.MemoryService,
) -> None:
    first = memory.remember("bot", "agent", "c1", "hello", "hi")
    second = memory.remember("bot", "agent", "c1", "My name is Ada", "Nice to meet you, Ada")
    assert second.id == first.id and second.entity_type == "conversation" and len(second.observations) == 2
    context = memory.context_for("bot", "agent", "what is my name?", 3, 0.1)
    assert "My name is Ada" in context and "similarity" in context


def test_remember_cuts_an_oversized_exchange_instead_of_failing(
    memory: service.MemoryService,
) -> None:
    entity = memory.remember("bot", "agent", "c1", "x" * 50_000, "ok")
    assert len(entity.observations[0].encode()) <= memory.settings.max_observation_size


def test_stats_and_health(memory: service.MemoryService) -> None:
    _seed(memory)
    stats = memory.stats()
    assert stats["entities"] == stats["vectors"] == 3
    assert stats["by_scope"] == {"global": 1, "workspace": 2}
    assert stats["migrations"] == MIGRATIONS[memory.store.backend] and stats["backend"] == memory.store.backend
    assert stats["sqlite_size_bytes"] > 0
    health = memory.health()
    assert health["status"] == "healthy" and health["model"] == "all-MiniLM-L6-v2" and health["entities"] == 3


def test_state_survives_reopen(open_memory: OpenMemory) -> None:
    first = open_memory()
    _seed(first)
    first.close()
    again = open_memory()
    assert again.store.migrations() == MIGRATIONS[again.store.backend]
    assert again.search("jazz", k=1)[0].entity.name == "bob"


def test_corrupted_model_leaves_memory_unhealthy_but_readable(tmp_path: Path, open_memory: OpenMemory) -> None:
    healthy = open_memory()
    _seed(healthy)
    healthy.close()
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"garbage")
    memory = open_memory(EngineMemorySettings(model_path=str(broken)), embedder=None)
    health = memory.health()
    assert health["status"] == "unhealthy" and "cannot be loaded" in health["message"] and health["entities"] == 3
    with pytest.raises(errors.Unavailable, match="memory unavailable"):
        memory.search("jazz")
    with pytest.raises(errors.Unavailable):
        memory.create_entity(E("new", "note"))
    assert [e.name for e in memory.lookup("bob")] == ["bob"]
    assert memory.stats()["status"] == "unhealthy"


def test_vacuum_and_reindex(memory: service.MemoryService) -> None:
    alice, *_ = _seed(memory)
    memory.delete_entity(alice.id)
    assert set(memory.vacuum()) == {"size_before_bytes", "size_after_bytes"}
    result = memory.reindex()
    assert result["entities"] == 2 and result["health"]["status"] == "healthy"
    assert memory.search("jazz", k=1)[0].entity.name == "bob"


def test_concurrent_writers_and_searchers(memory: service.MemoryService) -> None:
    failures: list[BaseException] = []

    def work(agent: str) -> None:
        try:
            for turn in range(5):
                memory.remember(agent, "workspace", "c", f"{agent} says fact {turn}", "ok")
                memory.context_for(agent, "workspace", f"fact {turn}", 3, 0.0)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(f"agent-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert memory.store.count() == memory.store.vector_count() == len(memory.index) == 4
    assert all(len(e.observations) == 5 for e in memory.list_entities())
