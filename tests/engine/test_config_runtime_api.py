"""Config agents through a real engine subprocess: the openai provider, conversations, limits, timeouts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.engine import EngineProcess, running_engine
from tests.support.openai_server import OpenAITestServer

V1 = "/api/v1"
KEY = "sk-e2e-never-shown-42"


@pytest.fixture(scope="module")
def llm_engine(
        tmp_path_factory: pytest.TempPathFactory, openai_server: OpenAITestServer) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("engine")
    config = root / "caxton.yaml"
    config.write_text(f"llm:\n  openai:\n    base_url: {openai_server.url}\n    api_key_env: E2E_LLM_KEY\n    retries: 1\n")
    with running_engine(root / "data", config=config, env={"E2E_LLM_KEY": KEY}) as process:
        yield process


def deploy(engine: EngineProcess, name: str, **extra: Any) -> httpx.Response:
    spec = {"name": name, "version": "1.0.0", "system_prompt": "You are {{ agent.name }}.", **extra}
    return httpx.put(f"{engine.url}{V1}/agents/{name}", json={"spec": spec, "module": None, "source": {}}, timeout=30)


def message(engine: EngineProcess, name: str, content: Any, cid: str | None = None) -> httpx.Response:
    body = {"content": content, "conversation_id": cid}
    return httpx.post(f"{engine.url}{V1}/agents/{name}/messages", json=body, timeout=30)


def test_an_openai_agent_answers_and_keeps_its_conversation(
        llm_engine: EngineProcess, openai_server: OpenAITestServer) -> None:
    assert deploy(llm_engine, "chat", llm={"provider": "openai", "model": "tiny"}).status_code < 300
    first = message(llm_engine, "chat", "hello", "c1")
    second = message(llm_engine, "chat", "again", "c1")
    assert first.status_code == 200, first.text
    assert second.json()["reply"]["reply"] == "echo(tiny) #4: again"
    assert openai_server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in llm_engine.log_text()


def test_limits_and_failures_come_back_as_clear_http_errors(
        llm_engine: EngineProcess, openai_server: OpenAITestServer) -> None:
    # response_timeout: room for a first call on a loaded machine (CI), well under the server's delay below
    limits = {"max_conversations": 1, "response_timeout": "1500ms"}
    assert deploy(llm_engine, "tight", llm={"provider": "openai", "model": "m"}, resource_limits=limits).status_code < 300
    assert message(llm_engine, "tight", "a", "one").status_code == 200
    refused = message(llm_engine, "tight", "b", "two")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_conversations"
    assert 1 <= int(refused.headers["Retry-After"]) <= 30  # when "one" has been idle conversations.min_idle
    openai_server.fail(1, status=401, body=f'{{"error": {{"message": "bad key {KEY}"}}}}')
    unauthorized = message(llm_engine, "tight", "c")
    assert unauthorized.status_code == 502 and "E2E_LLM_KEY" in unauthorized.json()["error"]["hint"]
    assert unauthorized.json()["error"]["details"]["reason"] == "unauthorized"
    assert KEY not in unauthorized.text
    openai_server.delay = 3.0
    try:
        slow = message(llm_engine, "tight", "d")
    finally:
        openai_server.delay = 0.0
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "agent_failure"
    assert slow.json()["error"]["details"]["reason"] == "timeout"
    assert KEY not in llm_engine.log_text()
