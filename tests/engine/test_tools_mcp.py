"""MCP servers as tools through a real engine subprocess and a real MCP server (the SDK's own, streamable HTTP,
on 127.0.0.1): the offline provider's ``/tool server.tool`` lines, the OpenAI-compatible test server's scripted
tool_calls, headers from the engine's environment, and every bad server (down, slow, an error, a malformed
result, an answer of 5 MB, a tool the agent may not use, a host off the agent's allowed hosts) failing only its call
while the engine and other agents keep serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from caxton.client import agents
from tests.support.engine import EngineProcess, running_engine
from tests.support.mcp_server import McpTestServer, running_mcp_server
from tests.support.openai_server import OpenAITestServer, running_openai_server
from tests.support.paths import free_port

V1 = "/api/v1"
TOKEN = "mcp-test-token-4f1c"


@pytest.fixture(scope="module")
def mcp() -> Iterator[McpTestServer]:
    with running_mcp_server(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with running_openai_server() as server:
        yield server


@pytest.fixture(scope="module")
def mcp_engine(tmp_path_factory: pytest.TempPathFactory, llm: OpenAITestServer) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("engine")
    config = root / "caxton.yaml"
    config.write_text(f"llm:\n  openai:\n    base_url: {llm.url}\n    api_key_env: MCP_LLM_KEY\n    retries: 0\n")
    env = {"MCP_LLM_KEY": "sk-mcp", "MCP_TEST_AUTH": f"Bearer {TOKEN}", "MCP_WRONG_AUTH": "Bearer wrong"}
    with running_engine(root / "data", config=config, env=env) as process:
        yield process


def server(name: str, url: str, tools: list[str], env: str = "MCP_TEST_AUTH", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "headers": {"Authorization": {"env": env}}, "allowed_tools": tools, **extra}


def deploy(engine: EngineProcess, name: str, tools: list[str], servers: list[dict[str, Any]], **extra: Any) -> None:
    """PUT the agent straight to the API (no validation); its MCP servers' host 127.0.0.1 allowed unless ``extra``
    says otherwise."""
    spec = {"name": name, "version": "1.0.0", "system_prompt": "You are {{ agent.name }}.", "tools": tools,
            "mcp_servers": servers, "security_policy": {"allowed_hosts": ["127.0.0.1"]}, **extra}
    answer = httpx.put(f"{engine.url}{V1}/agents/{name}", json={"spec": spec, "module": None, "source": {}}, timeout=30)
    assert answer.status_code < 300, answer.text


def message(engine: EngineProcess, name: str, content: str) -> dict[str, Any]:
    answer = httpx.post(f"{engine.url}{V1}/agents/{name}/messages", json={"content": content}, timeout=60)
    assert answer.status_code == 200, answer.text
    reply: dict[str, Any] = answer.json()["reply"]
    return reply


def test_offline_tool_lines_call_mcp_tools_with_the_header_from_the_engine_environment(
    mcp_engine: EngineProcess, mcp: McpTestServer,
) -> None:
    deploy(mcp_engine, "mcp-clerk", ["calc.add", "calc.whoami", "calculator"],
           [server("calc", mcp.url, ["add", "whoami"])])
    reply = message(mcp_engine, "mcp-clerk",
                    'sum it\n/tool calc.add {"a": 2, "b": 40}\n/tool calc.whoami {}\n/tool calculator {"expression": "1"}')
    calls = reply["tool_calls"]
    assert [(c["tool"], c["outcome"]) for c in calls] == [("calc.add", "ok"), ("calc.whoami", "ok"), ("calculator", "ok")]
    assert calls[0]["result"] == {"result": 42}
    assert calls[1]["result"] == {"result": f"Bearer {TOKEN}"}  # the value of MCP_TEST_AUTH on the engine host
    assert 'call_1: calc.add {"a": 2, "b": 40}' in reply["reply"] and '{"result":42}' in reply["reply"]
    lines = [line.message for line in agents.logs(mcp_engine.client(), "mcp-clerk")]
    assert any(line.startswith("tool call call_1 calc.add: ok") for line in lines), lines


def test_the_model_gets_the_servers_description_and_schema_and_the_result(
    mcp_engine: EngineProcess, mcp: McpTestServer, llm: OpenAITestServer,
) -> None:
    deploy(mcp_engine, "mcp-model", ["calc.add", "calc.echo"], [server("calc", mcp.url, ["add", "echo"])],
           llm={"provider": "openai", "model": "m"})
    llm.call_tools([("calc__echo", {"text": "héllo"}), ("calc__add", {"a": 1, "b": 2})])  # OpenAI's spelling
    reply = message(mcp_engine, "mcp-model", "use the server")
    assert [(c["tool"], c["outcome"]) for c in reply["tool_calls"]] == [("calc.echo", "ok"), ("calc.add", "ok")]
    first, last = llm.requests[-2].body, llm.requests[-1].body
    declared = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(declared) == {"calc__add", "calc__echo"}  # secret, slow, fail...: listed by the server, not offered
    assert declared["calc__add"]["description"] == "Add two integers."
    assert declared["calc__add"]["parameters"]["required"] == ["a", "b"]
    (asked,) = [m for m in last["messages"] if m.get("tool_calls")]
    assert [c["function"]["name"] for c in asked["tool_calls"]] == ["calc__echo", "calc__add"]
    results = [json.loads(m["content"]) for m in last["messages"] if m["role"] == "tool"]
    assert results == [{"result": "héllo"}, {"result": 3}]
    assert reply["reply"] == "echo(m) #5: use the server"


def test_bad_servers_fail_only_their_calls_with_a_reason_and_the_engine_keeps_serving(
    mcp_engine: EngineProcess, mcp: McpTestServer, llm: OpenAITestServer,
) -> None:
    down = f"http://127.0.0.1:{free_port()}/mcp"
    deploy(mcp_engine, "mcp-broken", ["ok.add", "ok.fail", "ok.big", "slow.slow", "down.add", "bad.add", "garbage.add",
                                      "wrong.add"],
           [server("ok", mcp.url, ["add", "fail", "big"]), server("slow", mcp.url, ["slow"], timeout="300ms"),
            server("down", down, ["add"]), server("bad", mcp.malformed_url, ["add"]),
            server("garbage", mcp.garbage_url, ["add"]), server("wrong", mcp.url, ["add"], env="MCP_WRONG_AUTH")],
           llm={"provider": "openai", "model": "m"}, resource_limits={"max_tool_calls": 20})
    asked = [("ok__fail", {}), ("slow__slow", {"seconds": 5}), ("down__add", {"a": 1, "b": 1}),
             ("bad__add", {"a": 1, "b": 1}), ("garbage__add", {"a": 1, "b": 1}), ("wrong__add", {"a": 1, "b": 1}),
             ("ok__secret", {}), ("ok__big", {"size": 5_000_000}), ("ok__add", {"a": 1, "b": 1})]
    llm.call_tools(asked)
    reply = message(mcp_engine, "mcp-broken", "try every server")
    outcomes = {c["tool"]: (c["outcome"], json.dumps(c["result"])) for c in reply["tool_calls"]}
    assert outcomes["ok.add"] == ("ok", '{"result": 2}')
    assert outcomes["ok.fail"][0] == "failed" and "the test tool failed on purpose" in outcomes["ok.fail"][1]
    assert outcomes["slow.slow"][0] == "timeout" and "did not answer in time" in outcomes["slow.slow"][1]
    assert outcomes["down.add"][0] == "failed" and "unreachable" in outcomes["down.add"][1]
    assert outcomes["bad.add"][0] == "failed" and "malformed" in outcomes["bad.add"][1]
    assert outcomes["garbage.add"][0] == "failed" and "Failed to parse" in outcomes["garbage.add"][1]
    assert outcomes["wrong.add"][0] == "failed" and "error response" in outcomes["wrong.add"][1]
    assert outcomes["ok.big"][0] == "too_large" and "over 4,194,304 bytes" in outcomes["ok.big"][1]
    assert outcomes["ok__secret"][0] == "not_allowed"  # listed by the server, not one of the agent's tools
    assert TOKEN not in json.dumps(reply)  # the header's value never reaches the model or the reply
    # the engine and other agents keep serving; nothing is left running
    deploy(mcp_engine, "mcp-bystander", ["calculator"], [])
    assert message(mcp_engine, "mcp-bystander", '/tool calculator {"expression": "2 * 3"}')["tool_calls"][0][
        "result"] == {"result": 6}
    again = message(mcp_engine, "mcp-broken", "plain question")
    assert again["tool_calls"] == [] and again["reply"] == "echo(m) #2: plain question"
    scraped = httpx.get(f"{mcp_engine.url}/metrics", timeout=30).text
    assert "caxton_tool_calls_active 0.0" in scraped
    assert 'caxton_tool_calls_total{agent="mcp-broken",outcome="timeout",tool="slow.slow"} 1.0' in scraped


def test_an_agent_whose_server_is_down_deploys_and_is_told_why(mcp_engine: EngineProcess) -> None:
    down = f"http://127.0.0.1:{free_port()}/mcp"
    deploy(mcp_engine, "mcp-offline", ["files.read"], [server("files", down, ["read"])])
    reply = message(mcp_engine, "mcp-offline", '/tool files.read {"path": "a.txt"}')
    (call,) = reply["tool_calls"]
    assert call["outcome"] == "failed" and "unreachable" in call["result"]["error"]["message"]
    assert "check that the server runs" in call["result"]["error"]["hint"]


def test_a_server_off_the_agents_allowed_hosts_is_never_contacted(
    mcp_engine: EngineProcess, mcp: McpTestServer,
) -> None:
    # the API takes specs from any deploy token, validated or not: the engine applies the allow-list itself
    deploy(mcp_engine, "mcp-fenced", ["calc.add"], [server("calc", mcp.counted_url, ["add"])],
           security_policy={"allowed_hosts": ["localhost", "127.0.0.1:1"]})
    deploy(mcp_engine, "mcp-unlisted", ["calc.add"], [server("calc", mcp.counted_url, ["add"])],
           security_policy=None)
    for agent in ("mcp-fenced", "mcp-unlisted"):
        (call,) = message(mcp_engine, agent, '/tool calc.add {"a": 1, "b": 2}')["tool_calls"]
        assert call["outcome"] == "not_allowed", call
        error = call["result"]["error"]
        assert error["message"] == f"MCP server 'calc': 127.0.0.1:{mcp.port} is not on this agent's allowed hosts"
        assert "security_policy.allowed_hosts" in error["hint"]
    assert mcp.counted() == 0  # neither the call nor a tools/list reached the server
    deploy(mcp_engine, "mcp-let-in", ["calc.add"], [server("calc", mcp.counted_url, ["add"])])  # 127.0.0.1 allowed
    (call,) = message(mcp_engine, "mcp-let-in", '/tool calc.add {"a": 1, "b": 2}')["tool_calls"]
    assert (call["outcome"], call["result"]) == ("ok", {"result": 3})
    assert mcp.counted() > 0  # the count does see requests
