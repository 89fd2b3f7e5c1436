"""The config-agent runtime with the engine's real vector memory (caxton.memory.service)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from caxton.llm import config_runtime, providers
from caxton.engine.serving import conversations
from caxton.memory import embeddings, service
from caxton.spec import agent as agent_spec
from caxton.spec import project


@pytest.fixture(scope="module")
def embedder() -> embeddings.Embedder:
    loaded = embeddings.Embedder(embeddings.locate())
    loaded.load()
    return loaded


@pytest.fixture
def memory(tmp_path: Path, embedder: embeddings.Embedder) -> Iterator[service.MemoryService]:
    opened = service.MemoryService(tmp_path / "memory.db", project.EngineMemorySettings(), embedder=embedder)
    yield opened
    opened.close()


def runtime_with(memory: service.MemoryService | None, name: str = "barista") -> config_runtime.ConfigAgentRuntime:
    spec = agent_spec.parse_agent(
        {
            "name": name,
            "version": "1.0.0",
            "system_prompt": "Known facts:\n{{ memory_context }}",
            "memory": {"enabled": True, "scope": "agent", "min_similarity": 0.1},
        }
    )
    assert isinstance(spec, agent_spec.ConfigAgent)
    runtime = config_runtime.ConfigAgentRuntime(
        spec,
        revision=1,
        providers={"offline": providers.OfflineProvider()},
        conversations=conversations.InMemoryConversationStore(),
        memory=memory,
    )
    runtime.start()
    return runtime


def test_an_earlier_exchange_comes_back_as_memory_context(memory: service.MemoryService) -> None:
    runtime = runtime_with(memory)
    runtime.handle({"content": "Ada always orders green tea with honey", "conversation_id": "c1"})
    reply = runtime.handle({"content": "what does Ada usually drink?", "conversation_id": "c2"})["reply"]
    system = reply.split("### user")[0]
    assert "green tea with honey" in system
    assert runtime.stats()["memory_errors"] == 0


def test_agent_scoped_memory_is_not_seen_by_another_agent(memory: service.MemoryService) -> None:
    runtime_with(memory, "barista").handle({"content": "Ada always orders green tea with honey"})
    reply = runtime_with(memory, "mechanic").handle({"content": "what does Ada usually drink?"})["reply"]
    assert "green tea" not in reply.split("### user")[0]
