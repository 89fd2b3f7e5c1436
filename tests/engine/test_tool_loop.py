"""The tool loop of a config agent in process: the offline provider's ``/tool`` lines, the OpenAI-compatible
server's scripted ``tool_calls``, parallel calls, failures as results, the limits, logs and metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from caxton import errors, metrics
from caxton.engine.serving import conversations
from caxton.llm import config_runtime, providers
from caxton.llm.tools import base, builtin
from caxton.spec import agent as agent_spec
from caxton.spec import project
from tests.support.openai_server import OpenAITestServer, running_openai_server

ENV = "CAXTON_TEST_TOOLS_KEY"


class ScriptedTools:
    """A ToolSource (the interface WASM and MCP tools plug into): ``slow`` sleeps, ``broken`` raises, ``big``
    returns 300 KB,
    ``gate`` waits until ``gate_count`` calls are running at once (proves they run in parallel)."""

    def __init__(self, gate_count: int = 2) -> None:
        self.barrier = threading.Barrier(gate_count, timeout=5)
        self.finished: list[str] = []

    def names(self) -> Sequence[str]:
        return ["slow", "broken", "gate", "big"]

    def build(self, name: str, context: base.ToolContext) -> base.Tool | None:
        runs = {"slow": self._slow, "broken": self._broken, "gate": self._gate, "big": self._big}
        if name not in runs:
            return None
        return base.FunctionTool(name, f"test tool {name}", {"type": "object"}, runs[name])

    def _slow(self, arguments: dict[str, Any], deadline: float) -> Any:
        time.sleep(float(arguments.get("seconds", 1.0)))
        self.finished.append("slow")
        return {"slept": True}

    def _broken(self, arguments: dict[str, Any], deadline: float) -> Any:
        raise RuntimeError("the tool's own bug")

    def _big(self, arguments: dict[str, Any], deadline: float) -> Any:
        return {"text": "x" * 300_000}

    def _gate(self, arguments: dict[str, Any], deadline: float) -> Any:
        self.barrier.wait()
        return {"passed": arguments.get("n")}


def make(tools: list[str], *, limits: dict[str, Any] | None = None, registry: Any = None,
         extra: ScriptedTools | None = None, sink: list[tuple[str, str]] | None = None,
         store: conversations.InMemoryConversationStore | None = None, llm_settings: project.LLMProviders | None = None,
         **fields: Any) -> config_runtime.ConfigAgentRuntime:
    data: dict[str, Any] = {"name": "clerk", "version": "1.0.0", "system_prompt": "You are a clerk.",
                            "tools": tools, "resource_limits": limits or {}, **fields}
    spec = agent_spec.parse_agent(data)
    assert isinstance(spec, agent_spec.ConfigAgent)
    runtime = config_runtime.ConfigAgentRuntime(
        spec, revision=1,
        providers=registry if registry is not None else {"offline": providers.OfflineProvider()},
        conversations=store if store is not None else conversations.InMemoryConversationStore(), llm=llm_settings,
        log_sink=(lambda level, message: sink.append((level, message))) if sink is not None else None,
        tool_sources=(builtin.BUILTIN, extra or ScriptedTools()),
    )
    runtime.start()
    return runtime


def send(runtime: config_runtime.ConfigAgentRuntime, content: str, conversation: str | None = None) -> dict[str, Any]:
    reply = runtime.handle({"content": content, "conversation_id": conversation})
    assert isinstance(reply, dict)
    return reply


def counted(tool: str, outcome: str, agent: str = "clerk") -> float:
    return metrics.sample_value("caxton_tool_calls_total", {"agent": agent, "tool": tool, "outcome": outcome}) or 0.0


# --- the offline provider ---------------------------------------------------------------------------


def test_offline_tool_lines_call_the_tools_and_the_transcript_shows_calls_and_results() -> None:
    before = counted("calculator", "ok")
    reply = send(make(["calculator", "csv_parser"]),
                 'Work it out\n/tool calculator {"expression": "6 * 7"}\n/tool csv_parser {"text": "a,b\\n1,2"}')
    text = reply["reply"]
    assert '### assistant\ncall_1: calculator {"expression": "6 * 7"}\ncall_2: csv_parser' in text
    assert '### tool call_1\n{"result":42}' in text
    assert '### tool call_2\n{"columns":["a","b"],"rows":[{"a":"1","b":"2"}],"row_count":1,"truncated":false}' in text
    first = reply["tool_calls"][0]
    assert (first["tool"], first["outcome"], first["result"]) == ("calculator", "ok", {"result": 42})
    assert counted("calculator", "ok") == before + 1
    assert send(make(["calculator"]), "no tool lines")["tool_calls"] == []


def test_an_agent_without_tools_ignores_tool_lines_and_its_reply_has_no_tool_calls() -> None:
    reply = send(make([]), '/tool calculator {"expression": "1"}')
    assert "tool_calls" not in reply and '/tool calculator {"expression": "1"}' in reply["reply"]


def test_failures_go_back_to_the_model_as_results_and_the_message_succeeds() -> None:
    logs: list[tuple[str, str]] = []
    runtime = make(["calculator", "broken"], sink=logs)
    reply = send(runtime, "\n".join([
        '/tool calculator {"expression": "1 / 0"}',  # the tool's error
        "/tool broken {}",  # a bug in the tool
        '/tool calculator {"expr": "1"}',  # fails the argument schema
        "/tool calculator {not json",  # not JSON
        '/tool shell {"cmd": "rm -rf /"}',  # not one of the agent's tools
    ]))
    outcomes = [(c["tool"], c["outcome"]) for c in reply["tool_calls"]]
    assert outcomes == [("calculator", "invalid_arguments"), ("broken", "failed"), ("calculator", "invalid_arguments"),
                        ("calculator", "invalid_arguments"), ("shell", "not_allowed")]
    results = {c["id"]: c["result"]["error"]["message"] for c in reply["tool_calls"]}
    assert "division by zero" in results["call_1"] and "the tool's own bug" in results["call_2"]
    assert "expression" in results["call_3"] and "not one of this agent's tools" in results["call_5"]
    assert "### tool call_5\n" in reply["reply"] and "not one of this agent's tools" in reply["reply"]
    assert counted("(unlisted)", "not_allowed") >= 1
    assert any(level == "warning" and "call_5 shell: not_allowed" in message for level, message in logs)


def test_a_result_over_the_cap_is_refused_as_too_large() -> None:
    reply = send(make(["big"]), "/tool big")
    call = reply["tool_calls"][0]
    assert call["outcome"] == "too_large" and "262,144" in call["result"]["error"]["message"]


def test_a_tool_no_source_has_refuses_to_start() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        make(["shell"])
    assert "no tool 'shell'" in caught.value.message and "calculator" in (caught.value.hint or "")


def test_several_calls_run_in_parallel() -> None:
    extra = ScriptedTools(gate_count=3)
    reply = send(make(["gate"], extra=extra), "\n".join(f'/tool gate {{"n": {n}}}' for n in range(3)))
    assert [c["result"] for c in reply["tool_calls"]] == [{"passed": 0}, {"passed": 1}, {"passed": 2}]


def test_tool_call_timeout_fails_the_call_not_the_message() -> None:
    extra = ScriptedTools()
    runtime = make(["slow", "calculator"], extra=extra, limits={"tool_call_timeout": "200ms"})
    started = time.monotonic()
    reply = send(runtime, '/tool slow {"seconds": 2}\n/tool calculator {"expression": "2 + 2"}')
    assert time.monotonic() - started < 1.5
    assert [c["outcome"] for c in reply["tool_calls"]] == ["timeout", "ok"]
    assert "tool_call_timeout" in reply["tool_calls"][0]["result"]["error"]["hint"]


def test_max_tool_calls_refuses_the_calls_past_it() -> None:
    runtime = make(["calculator"], limits={"max_tool_calls": 2})
    reply = send(runtime, "\n".join(f'/tool calculator {{"expression": "{n} + 1"}}' for n in range(3)))
    assert [c["outcome"] for c in reply["tool_calls"]] == ["ok", "ok", "max_tool_calls"]
    assert "max_tool_calls (2)" in reply["tool_calls"][2]["result"]["error"]["message"]


# --- the OpenAI-compatible server --------------------------------------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAITestServer]:
    monkeypatch.setenv(ENV, "sk-tools-test")
    with running_openai_server() as srv:
        yield srv


def openai(url: str) -> dict[str, providers.LLMProvider]:
    return providers.build_providers(project.LLMProviders(openai=project.OpenAIProvider(base_url=url, api_key_env=ENV)))


def test_openai_tool_calls_round_trip_with_declared_tools_and_tool_messages(server: OpenAITestServer) -> None:
    runtime = make(["calculator", "json_parser"], registry=openai(server.url), llm={"provider": "openai", "model": "m"})
    server.call_tools([("calculator", {"expression": "2 ** 10"}), ("json_parser", {"text": "[1]", "path": "[0]"})])
    reply = send(runtime, "compute")
    assert reply["reply"] == "echo(m) #5: compute"  # system, user, assistant with calls, two tool results
    declared = server.requests[0].body["tools"]
    assert [t["function"]["name"] for t in declared] == ["calculator", "json_parser"]
    assert declared[0]["type"] == "function" and declared[0]["function"]["parameters"]["required"] == ["expression"]
    second = server.requests[1].body["messages"]
    assert second[2]["role"] == "assistant" and second[2]["tool_calls"][0]["function"]["name"] == "calculator"
    assert second[3] == {"role": "tool", "tool_call_id": second[2]["tool_calls"][0]["id"], "content": '{"result":1024}'}
    assert second[4]["content"] == '{"value":1}'


def test_a_model_that_keeps_calling_past_max_tool_calls_fails_the_message(server: OpenAITestServer) -> None:
    runtime = make(["calculator"], registry=openai(server.url), llm={"provider": "openai", "model": "m"},
                   limits={"max_tool_calls": 2})
    server.call_tools([("calculator", {"expression": "1"})], times=4)
    with pytest.raises(errors.ConfigAgentFailure) as caught:
        send(runtime, "loop forever")
    assert caught.value.reason == "tool_loop" and "max_tool_calls" in (caught.value.hint or "")
    assert len(server.requests) == 4  # 2 calls ran, the 3rd was refused, the model asked again: failed
    refused = server.requests[3].body["messages"][-1]
    assert refused["role"] == "tool" and "max_tool_calls" in refused["content"]


# --- tool exchanges in the conversation ---------------------------------------------------------------


def assert_no_orphan_tool_message(messages: list[dict[str, Any]]) -> None:
    """What an OpenAI-compatible server checks: each tool message answers a call of the assistant turn before it."""
    asked: set[str] = set()
    for message in messages:
        if message["role"] == "tool":
            assert message["tool_call_id"] in asked, messages
        elif message["role"] == "assistant":
            asked = {call["id"] for call in message.get("tool_calls", [])}
        elif message["role"] == "user":
            asked = set()


def test_the_next_message_sends_the_model_the_whole_tool_exchange(server: OpenAITestServer) -> None:
    runtime = make(["calculator"], registry=openai(server.url), llm={"provider": "openai", "model": "m"})
    server.call_tools([("calculator", {"expression": "6 * 7"})])
    first = send(runtime, "compute", "c1")
    assert first["reply"] == "echo(m) #4: compute"
    assert [r["tool_calls"] for r in first["rounds"]] == [[first["tool_calls"][0]["id"]], []]
    assert all(r["duration_ms"] >= 0 for r in first["rounds"]) and [r["round"] for r in first["rounds"]] == [1, 2]
    send(runtime, "and now?", "c1")
    sent = server.requests[-1].body["messages"]
    call_id = first["tool_calls"][0]["id"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[2]["tool_calls"] == [{"id": call_id, "type": "function",
                                      "function": {"name": "calculator", "arguments": '{"expression": "6 * 7"}'}}]
    assert sent[3] == {"role": "tool", "tool_call_id": call_id, "content": '{"result":42}'}
    assert sent[4] == {"role": "assistant", "content": "echo(m) #4: compute"} and sent[5]["content"] == "and now?"


def test_the_offline_transcript_shows_the_earlier_tool_calls_of_the_conversation() -> None:
    runtime = make(["calculator"])
    send(runtime, 'first\n/tool calculator {"expression": "6 * 7"}', "c1")
    text = send(runtime, "second", "c1")["reply"]
    earlier = ('### user\nfirst\n/tool calculator {"expression": "6 * 7"}\n### assistant\n'
               'call_1: calculator {"expression": "6 * 7"}\n### tool call_1\n{"result":42}\n### assistant\n[offline ')
    assert earlier in text and text.endswith("### user\nsecond")


def test_a_template_history_has_the_questions_and_answers_only() -> None:
    runtime = make(["calculator"], user_prompt_template="{% for t in history %}{{ t.role }}|{% endfor %}{{ request }}")
    send(runtime, '/tool calculator {"expression": "1"}', "c1")
    assert "user|assistant|again" in send(runtime, "again", "c1")["reply"]


def test_the_prompt_bound_drops_whole_tool_exchanges(server: OpenAITestServer) -> None:
    settings = project.LLMProviders(max_prompt_size=1024)  # room for about one exchange besides the prompts
    runtime = make(["calculator"], registry=openai(server.url), llm={"provider": "openai", "model": "m"},
                   llm_settings=settings)
    for n in range(4):
        server.call_tools([("calculator", {"expression": f"{n} + 1"}), ("calculator", {"expression": f"{n} * 2"})])
        send(runtime, f"question {n} " + "x" * 150, "c1")
        sent = server.requests[-1].body["messages"]
        assert_no_orphan_tool_message(sent)
        assert sent[1]["role"] == "user"
    last = server.requests[-2].body["messages"]  # the 4th question's first round: history, then the question
    assert "question 0" not in json.dumps(last) and "question 2" in json.dumps(last)
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "tool", "assistant", "user"]


def test_the_history_bounds_drop_whole_tool_exchanges() -> None:
    store = conversations.InMemoryConversationStore(max_turns=6)
    runtime = make(["calculator"], store=store)
    send(runtime, 'one\n/tool calculator {"expression": "1"}', "c1")  # 4 turns: user, calls, tool, answer
    send(runtime, 'two\n/tool calculator {"expression": "2"}', "c1")  # max_turns drops the first 2 of these 8...
    history = store.history("clerk", "c1")
    assert [t["role"] for t in history] == ["assistant", "user", "assistant", "tool", "assistant"]  # ...and the tool
    assert "tool_calls" not in history[0] and history[2]["tool_calls"][0]["function"]["name"] == "calculator"
    small = conversations.InMemoryConversationStore(max_bytes=300)
    runtime = make(["calculator"], store=small)
    send(runtime, 'three\n/tool calculator {"expression": "3"}', "c2")
    assert [t["role"] for t in small.history("clerk", "c2")] == ["assistant"]  # not a tool turn without its call


def test_each_call_is_a_log_line_with_its_arguments_cut_short_and_secrets_redacted() -> None:
    logs: list[tuple[str, str]] = []
    runtime = make(["http_client", "calculator"], sink=logs)
    key = "sk-" + "a1" * 12
    headers = {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz", "X-Trace": "visible"}
    send(runtime, "\n".join([
        "/tool http_client " + json.dumps({"url": f"http://127.0.0.1:9/?key={key}", "headers": headers,
                                           "method": "POST", "body": "x" * 500}),
        "/tool calculator " + json.dumps({"expression": key}),
        '/tool calculator {"expression": "2 + 3"}',
    ]))
    logs.sort(key=lambda entry: entry[1])  # the calls ran in parallel: their lines come in any order
    lines = [message for _, message in logs]
    assert len(lines) == 3 and all(key not in line and "abcdefghijklmnop" not in line for line in lines)
    http, bad, good = lines
    assert http.startswith("tool call call_1 http_client: not_allowed in ") and "allowed hosts" in http
    assert '"Authorization":"(secret)"' in http and '"X-Trace":"visible"' in http and "?key=(secret)" in http
    assert http.endswith("…") and len(http.split("; arguments ", 1)[1]) == 200  # the body cut short
    assert bad.startswith("tool call call_2 calculator: invalid_arguments in ") and '{"expression":"(secret)"}' in bad
    assert good.endswith('; arguments {"expression":"2 + 3"}') and " ok in " in good
    assert [level for level, _ in logs] == ["warning", "warning", "info"]


def test_a_revision_without_tools_continues_the_conversation_without_the_tool_turns(server: OpenAITestServer) -> None:
    store = conversations.InMemoryConversationStore()
    with_tools = make(["calculator"], registry=openai(server.url), llm={"provider": "openai", "model": "m"},
                      store=store)
    server.call_tools([("calculator", {"expression": "1 + 1"})])
    send(with_tools, "compute", "c1")
    without = make([], registry=openai(server.url), llm={"provider": "openai", "model": "m"}, store=store)
    send(without, "and now?", "c1")  # the next revision, no tools declared: no tool turns sent
    sent = server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"] and "tools" not in server.requests[-1].body
    assert sent[2] == {"role": "assistant", "content": "echo(m) #4: compute"}
