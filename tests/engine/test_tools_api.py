"""Tools through a real engine subprocess, the local OpenAI-compatible server and a target on 127.0.0.1:
memory_store then memory_search through the loop, http_client's allow-list, failures as results, the limits,
the reply's tool_calls, the agent's logs and /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from caxton.client import agents
from caxton.spec import api
from tests.support.engine import EngineProcess, running_engine
from tests.support.http_target import HttpTarget, running_http_target
from tests.support.openai_server import OpenAITestServer, running_openai_server

V1 = "/api/v1"


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with running_openai_server() as server:
        yield server


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with running_http_target() as server:
        yield server


@pytest.fixture(scope="module")
def tools_engine(tmp_path_factory: pytest.TempPathFactory, llm: OpenAITestServer) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("engine")
    config = root / "caxton.yaml"
    config.write_text(f"llm:\n  openai:\n    base_url: {llm.url}\n    api_key_env: TOOLS_LLM_KEY\n    retries: 0\n")
    with running_engine(root / "data", config=config, env={"TOOLS_LLM_KEY": "sk-tools"}) as process:
        yield process


def deploy(engine: EngineProcess, name: str, tools: list[str], **extra: Any) -> None:
    spec = {"name": name, "version": "1.0.0", "system_prompt": "You are {{ agent.name }}.", "tools": tools,
            "llm": {"provider": "openai", "model": "m"}, **extra}
    answer = httpx.put(f"{engine.url}{V1}/agents/{name}", json={"spec": spec, "module": None, "source": {}}, timeout=30)
    assert answer.status_code < 300, answer.text


def message(engine: EngineProcess, name: str, content: str) -> httpx.Response:
    return httpx.post(f"{engine.url}{V1}/agents/{name}/messages", json={"content": content}, timeout=30)


def tool_results(llm: OpenAITestServer) -> list[str]:
    return [m["content"] for m in llm.requests[-1].body["messages"] if m["role"] == "tool"]


def test_memory_store_then_memory_search_through_the_loop(tools_engine: EngineProcess, llm: OpenAITestServer) -> None:
    deploy(tools_engine, "barista", ["memory_store", "memory_search"], memory={"scope": "agent"})
    llm.call_tools([("memory_store", {"name": "Ada", "type": "customer",
                                      "observations": ["Ada always orders green tea with honey"]})])
    stored = message(tools_engine, "barista", "remember Ada's order")
    assert stored.status_code == 200, stored.text
    assert stored.json()["reply"]["tool_calls"][0]["outcome"] == "ok"
    llm.call_tools([("memory_search", {"query": "what does Ada drink?", "k": 3})])
    found = message(tools_engine, "barista", "what does Ada drink?")
    assert found.status_code == 200, found.text
    result = found.json()["reply"]["tool_calls"][0]["result"]["results"]
    assert result[0]["name"] == "Ada" and "green tea with honey" in result[0]["observations"][0]
    assert "green tea with honey" in tool_results(llm)[0]  # the model got the result
    assert found.json()["reply"]["reply"] == "echo(m) #4: what does Ada drink?"


def test_http_client_reaches_an_allowed_host_and_is_refused_another(
    tools_engine: EngineProcess, llm: OpenAITestServer, target: HttpTarget,
) -> None:
    deploy(tools_engine, "fetcher", ["http_client"], security_policy={"allowed_hosts": [f"127.0.0.1:{target.port}"]})
    llm.call_tools([("http_client", {"url": f"{target.url}/hello"}),
                    ("http_client", {"url": f"http://localhost:{target.port}/hello"})])
    reply = message(tools_engine, "fetcher", "fetch both")
    assert reply.status_code == 200, reply.text
    calls = reply.json()["reply"]["tool_calls"]
    assert calls[0]["outcome"] == "ok" and calls[0]["result"]["body"] == "hello from the target"
    assert calls[1]["outcome"] == "not_allowed"
    assert "not on this agent's allowed hosts" in tool_results(llm)[1]


def test_failures_limits_and_unlisted_tools_reach_the_model_logs_and_metrics(
    tools_engine: EngineProcess, llm: OpenAITestServer, target: HttpTarget,
) -> None:
    deploy(tools_engine, "counter", ["calculator", "http_client"],
           resource_limits={"max_tool_calls": 3, "tool_call_timeout": "300ms"},
           security_policy={"allowed_hosts": ["127.0.0.1"]})
    target.slow_seconds = 2.0
    llm.call_tools([("calculator", {"expression": "1 / 0"}), ("shell", {"cmd": "ls"}),
                    ("http_client", {"url": f"{target.url}/slow"}), ("calculator", {"expression": "1 + 1"})])
    reply = message(tools_engine, "counter", "try everything")
    assert reply.status_code == 200, reply.text
    typed = api.ConfigAgentReply.model_validate(api.MessageReply.model_validate(reply.json()).reply)
    assert [c.outcome for c in typed.tool_calls or []] == ["invalid_arguments", "not_allowed", "timeout",
                                                          "max_tool_calls"]
    assert [c.tool for c in typed.tool_calls or []] == ["calculator", "shell", "http_client", "calculator"]
    results = tool_results(llm)
    assert "division by zero" in results[0] and "not one of this agent's tools" in results[1]
    lines = [line.message for line in agents.logs(tools_engine.client(), "counter")]
    assert any("shell: not_allowed" in line for line in lines), lines
    scraped = httpx.get(f"{tools_engine.url}/metrics", timeout=30).text
    assert 'caxton_tool_calls_total{agent="counter",outcome="timeout",tool="http_client"} 1.0' in scraped
    assert 'caxton_tool_calls_total{agent="counter",outcome="not_allowed",tool="(unlisted)"} 1.0' in scraped
    assert 'caxton_tool_call_duration_seconds_count{agent="counter",tool="calculator"}' in scraped
    assert "caxton_tool_calls_active 0.0" in scraped
    llm.call_tools([("calculator", {"expression": "1"})], times=5)  # 3 run, the 4th is refused, the 5th fails
    looping = message(tools_engine, "counter", "loop")
    assert looping.status_code == 502 and looping.json()["error"]["details"]["reason"] == "tool_loop"


def test_a_conversation_sends_the_model_its_earlier_tool_exchange_after_a_restart(
    tools_engine: EngineProcess, llm: OpenAITestServer,
) -> None:
    deploy(tools_engine, "keeper", ["calculator"])
    llm.call_tools([("calculator", {"expression": "6 * 7"}),
                    ("calculator", {"expression": "1", "token": "sk-" + "z" * 24})])  # fails the schema
    first = httpx.post(f"{tools_engine.url}{V1}/agents/keeper/messages", timeout=30,
                       json={"content": "compute", "conversation_id": "k1"})
    assert first.status_code == 200, first.text
    calls = first.json()["reply"]["tool_calls"]
    assert [r["tool_calls"] for r in first.json()["reply"]["rounds"]] == [[c["id"] for c in calls], []]
    lines = [line.message for line in agents.logs(tools_engine.client(), "keeper")]
    ok = [line for line in lines if line.startswith(f"tool call {calls[0]['id']} calculator: ok in ")]
    assert ok and ok[0].endswith('; arguments {"expression":"6 * 7"}')
    refused = [line for line in lines if f"{calls[1]['id']} calculator: invalid_arguments" in line]
    assert refused and '"token":"(secret)"' in refused[0] and "z" * 24 not in " ".join(lines)
    tools_engine.kill()  # the turns were committed before the reply
    tools_engine.start()
    again = httpx.post(f"{tools_engine.url}{V1}/agents/keeper/messages", timeout=30,
                       json={"content": "and then?", "conversation_id": "k1"})
    assert again.status_code == 200, again.text
    sent = llm.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "assistant", "user"]
    assert [c["id"] for c in sent[2]["tool_calls"]] == [c["id"] for c in calls]
    assert sent[3] == {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"result":42}'}
    assert sent[4]["tool_call_id"] == calls[1]["id"] and "invalid_arguments" in sent[4]["content"]
