"""The memory API and `caxton memory ...` end to end, against a real engine served on 127.0.0.1.

The engine gets its MemoryService the way ``Engine.start`` is expected to wire it
(``engine.memory`` for the API, ``RuntimeContext.memory`` for config agents); the
routes are mounted by ``create_app``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from caxton.engine.http import app as api
from caxton.engine.core import Engine
from caxton.memory import embeddings, service
from caxton.spec.project import EngineMemorySettings, ProjectConfig
from tests.conftest import CliResult
from tests.support.paths import free_port
from tests.support.postgres import create_database, drop_database


@dataclass
class Served:
    url: str
    engine: Engine
    memory: service.MemoryService | None


def _serve(engine: Engine) -> tuple[uvicorn.Server, threading.Thread, str]:
    app = api.create_app(engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the engine did not start serving"
    return server, thread, f"http://127.0.0.1:{port}"


#: This module's API and CLI tests run on both memory backends (``serve`` reads ``memory_backend``).
pytestmark = pytest.mark.parametrize("memory_backend", ["sqlite", "postgres"])


@pytest.fixture
def serve(
    tmp_path: Path, embedder: embeddings.Embedder, memory_backend: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Served]]:
    """``serve(memory_enabled=True, settings=None)``: an engine with its own memory (a new SQLite file, or with
    ``memory_backend`` postgres a new database on the session's server), served on 127.0.0.1."""
    running: list[tuple[uvicorn.Server, threading.Thread, service.MemoryService | None]] = []
    databases: list[str] = []

    def location(data_dir: Path) -> Path | str:
        if memory_backend == "sqlite":
            return data_dir / "memory.db"
        databases.append(create_database(request.getfixturevalue("pg_server_url")))
        return databases[-1]

    def start(memory_enabled: bool = True, settings: EngineMemorySettings | None = None) -> Served:
        engine = Engine(ProjectConfig(), tmp_path / f"data-{len(running)}")
        engine.start()
        memory = None
        if memory_enabled:
            memory = service.MemoryService(location(engine.data_dir), settings or EngineMemorySettings(),
                                           embedder=embedder)
            engine.ops.context.memory = memory
        engine.memory = memory  # type: ignore[attr-defined]
        server, thread, url = _serve(engine)
        running.append((server, thread, memory))
        return Served(url, engine, memory)

    yield start
    for server, thread, memory in running:
        server.should_exit = True
        thread.join(timeout=20)
        if memory is not None:
            memory.close()
    for url in databases:
        drop_database(request.getfixturevalue("pg_server_url"), url)


def _cli(run_cli: Callable[..., CliResult], url: str, *args: str) -> CliResult:
    return run_cli("memory", *args, "--engine", url)


def test_cli_add_search_stats_export_import(
    serve: Callable[..., Served], run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    url = serve().url
    added = _cli(run_cli, url, "add", "ada", "--type", "person", "-O", "Ada drinks green tea with honey")
    assert added.code == 0 and "stored #1 ada (person, workspace) v1" in added.out
    _cli(run_cli, url, "add", "oslo", "--type", "city", "-O", "Oslo is the capital of Norway", "--scope", "global")
    again = _cli(run_cli, url, "add", "ada", "--type", "person")
    assert again.code == 1 and "already exist" in again.err

    found = _cli(run_cli, url, "search", "what does Ada like to drink?", "-k", "2")
    assert found.code == 0 and found.out.splitlines()[0].split("  ")[1].startswith("#1 ada")
    as_json = json.loads(_cli(run_cli, url, "search", "Norway", "--type", "city", "-o", "json").out)
    assert [r["name"] for r in as_json["results"]] == ["oslo"] and 0 < as_json["results"][0]["similarity"] <= 1

    stats = _cli(run_cli, url, "stats")
    assert stats.code == 0 and "memory: healthy" in stats.out and "entities 2 / 100,000" in stats.out

    dump = tmp_path / "memory.jsonl"
    assert _cli(run_cli, url, "export", "--out", str(dump)).code == 0
    assert [json.loads(line)["kind"] for line in dump.read_text().splitlines()] == ["header", "entity", "entity"]
    other = serve().url
    imported = _cli(run_cli, other, "import", str(dump), "--merge", "error")
    assert imported.code == 0 and "2 created, 0 updated, 0 skipped" in imported.out
    skipped = _cli(run_cli, other, "import", str(dump), "--merge", "skip")
    assert "0 created, 0 updated, 2 skipped" in skipped.out
    conflict = _cli(run_cli, other, "import", str(dump), "--merge", "error")
    assert conflict.code == 1 and "already exist" in conflict.err

    assert "vacuumed:" in _cli(run_cli, other, "vacuum").out
    assert "reindexed 2 entities" in _cli(run_cli, other, "reindex").out


def test_api_crud_relations_neighbours_and_health(serve: Callable[..., Served]) -> None:
    url = serve().url + "/api/v1"
    with httpx.Client(base_url=url) as http:
        ada = http.post("/memory/entities", json={"name": "ada", "entity_type": "person"}).json()
        tea = http.post(
            "/memory/entities", json={"name": "tea", "entity_type": "drink", "observations": ["green tea"]}
        ).json()
        relation = http.post(
            "/memory/relations", json={"from_id": ada["id"], "to_id": tea["id"], "relation_type": "likes"}
        )
        assert relation.status_code == 200 and relation.json()["strength"] == 1.0
        patched = http.patch(f"/memory/entities/{ada['id']}", json={"add_observations": ["lives in Oslo"]}).json()
        assert patched["version"] == 2 and patched["observations"] == ["lives in Oslo"]
        graph = http.get(f"/memory/entities/{ada['id']}/neighbours", params={"depth": 1}).json()
        assert {e["name"] for e in graph["entities"]} == {"ada", "tea"}
        assert http.get("/memory/entities", params={"type": "drink"}).json()["entities"][0]["name"] == "tea"
        assert http.delete(f"/memory/entities/{tea['id']}").status_code == 200
        assert http.get(f"/memory/entities/{tea['id']}").json()["error"]["code"] == "not_found"
        assert http.get("/memory/relations").json() == {"relations": []}
        health = http.get("/health/memory").json()
        assert health["status"] == "healthy" and health["model"] == "all-MiniLM-L6-v2" and health["entities"] == 1


def test_oversized_observation_and_batch_are_413_with_nothing_stored(serve: Callable[..., Served]) -> None:
    served = serve(settings=EngineMemorySettings(max_observation_size=64, max_batch_size=2))
    with httpx.Client(base_url=served.url + "/api/v1") as http:
        big = {"name": "big", "entity_type": "note", "observations": ["x" * 65]}
        small = {"name": "small", "entity_type": "note"}
        answer = http.post("/memory/entities/batch", json={"entities": [small, big]})
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"
        answer = http.post("/memory/entities/batch", json={"entities": [small, small, small]})
        assert answer.status_code == 413
        assert http.get("/memory/stats").json()["entities"] == 0


def test_disabled_memory_is_503_with_a_hint(serve: Callable[..., Served], run_cli: Callable[..., CliResult]) -> None:
    served = serve(memory_enabled=False)
    answer = httpx.get(served.url + "/api/v1/memory/stats")
    assert answer.status_code == 503 and "memory.enabled" in answer.json()["error"]["hint"]
    disabled = httpx.get(served.url + "/api/v1/health/memory").json()
    assert disabled["status"] == "healthy" and disabled["enabled"] is False and "memory.enabled" in disabled["hint"]
    result = _cli(run_cli, served.url, "stats")
    assert result.code == 1 and "memory is disabled" in result.err


def _reply(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    body: Any = answer.json()
    return json.dumps(body["reply"])


def test_config_agent_answers_with_context_from_an_earlier_conversation(serve: Callable[..., Served]) -> None:
    served = serve()
    spec = {
        "name": "barista",
        "version": "1.0.0",
        "system_prompt": "You remember customers.",
        "user_prompt_template": "Known: {{ memory_context }}\nRequest: {{ request }}",
        "memory": {"enabled": True, "scope": "agent", "min_similarity": 0.2},
    }
    with httpx.Client(base_url=served.url + "/api/v1") as http:
        deployed = http.put("/agents/barista", json={"spec": spec, "module": None, "source": {}})
        assert deployed.status_code == 200, deployed.text
        first = _reply(
            http.post(
                "/agents/barista/messages",
                json={"content": "Ada always orders green tea with honey", "conversation_id": "c1"},
            )
        )
        assert "green tea with honey" in first
        later = _reply(
            http.post("/agents/barista/messages", json={"content": "What does Ada drink?", "conversation_id": "c2"})
        )
        known = later.split("Request:")[0]
        assert "Ada always orders green tea with honey" in known
    assert served.memory is not None
    assert served.memory.lookup("conversation:barista:c1", scope="agent", owner="barista")
