"""The engine opens the vector memory and config agents use it (issue 6, through the engine's API)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from caxton.engine.core import Engine
from caxton.spec.project import EngineMemorySettings, ProjectConfig

from tests.engine.helpers import config_spec


def remembering_agent() -> dict[str, object]:
    return config_spec(
        "historian",
        memory={"enabled": True, "scope": "agent", "max_results": 3, "min_similarity": 0.0},
        user_prompt_template="Context:\n{{ memory_context }}\nQuestion: {{ request }}",
    )


def test_a_config_agent_answers_with_context_from_an_earlier_conversation(
    make_api: Callable[..., TestClient],
) -> None:
    api = make_api()
    assert api.put("/api/v1/agents/historian", json={"spec": remembering_agent()}).status_code == 200
    first = api.post("/api/v1/agents/historian/messages",
                     json={"content": "The launch code name is BLUE HERON.", "conversation_id": "c1"})
    assert first.status_code == 200, first.text
    later = api.post("/api/v1/agents/historian/messages",
                     json={"content": "What was the launch code name?", "conversation_id": "c2"})
    assert later.status_code == 200, later.text
    reply = later.json()["reply"]["reply"]
    context = reply.split("Context:", 1)[1].split("Question:", 1)[0]
    assert "BLUE HERON" in context  # retrieved from memory, not from this conversation's history
    health = api.get("/api/v1/health/memory").json()
    assert health["status"] == "healthy" and health["entities"] >= 1


def test_memory_survives_a_hot_reload_and_a_restart(make_engine_inproc: Callable[..., Engine], tmp_path: Path) -> None:
    engine = make_engine_inproc()
    engine.deploy(remembering_agent(), None)
    engine.send("historian", "Our office moved to Lisbon in May.", "c1")
    engine.deploy({**remembering_agent(), "version": "1.1.0"}, None)  # hot reload
    assert "Lisbon" in str(engine.send("historian", "Where is the office?", "c2"))
    engine.stop()
    again = make_engine_inproc(data_dir=tmp_path / "data")
    assert "Lisbon" in str(again.send("historian", "Where is the office?", "c3"))


def test_a_broken_model_leaves_memory_unhealthy_and_other_agents_serving(
    make_engine_inproc: Callable[..., Engine], tmp_path: Path,
) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model")
    config = ProjectConfig(memory=EngineMemorySettings(model_path=str(bad)))
    engine = make_engine_inproc(config)
    assert engine.memory is not None
    engine.memory.warm_up()
    assert engine.memory_health()["status"] == "unhealthy"
    assert engine.health_detailed()["status"] == "degraded"  # serving, but its memory is broken
    engine.deploy(config_spec("plain"), None)
    assert engine.send("plain", "hello", None)["reply"]


def test_memory_can_be_disabled(make_engine_inproc: Callable[..., Engine]) -> None:
    engine = make_engine_inproc(ProjectConfig(memory=EngineMemorySettings(enabled=False)))
    assert engine.memory is None and engine.memory_health()["enabled"] is False
    assert engine.memory_health()["status"] == "healthy"  # off by choice: nothing is wrong
