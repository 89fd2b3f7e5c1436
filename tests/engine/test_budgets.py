"""Budgets (issue 18, item 2): every shared byte count is bounded.

- the engine-wide WASM memory budget (``server.max_wasm_memory``): a deploy past it is refused (409
  ``limit_exceeded``) naming what is used, by whom and how to fix, and nothing changes;
- caps on what clients and models control: the provider's reply (``llm.max_reply_size``, 502
  ``reply_too_large``), the prompt (``llm.max_prompt_size``: oldest history turns left out), the history of
  a conversation (``conversations.max_history_size``); the issue's 30 x 200 KB conversation stays bounded;
- conversation slots: the least recently used idle conversation (idle past ``conversations.min_idle``)
  gives its slot to a new one; 429 only when every one is busy or recent;
- template rendering stops at ``response_timeout`` (504), without burning CPU on the loop.

Real HTTP against real engine processes (``tests.support.engine``) and the OpenAI-compatible test server;
the conversation store's eviction order with an injected clock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from caxton import errors
from caxton.llm import openai_wire, providers
from caxton.engine.serving import conversations
from caxton.engine.intake import Prepared
from caxton.engine.state.records import Source
from caxton.spec import project
from tests.engine.helpers import deploy_body, wat_module
from tests.support.engine import EngineProcess, running_engine
from tests.support.openai_server import OpenAITestServer

if TYPE_CHECKING:
    from caxton.engine.core import Engine

V1 = "/api/v1"
KEY = "sk-budget-test"
MIB = 1024 * 1024
CONFIG = """\
memory:
  enabled: false
server:
  max_wasm_memory: 40MiB
conversations:
  min_idle: 300ms
llm:
  max_prompt_size: 768KiB
  max_reply_size: 1MiB
  openai:
    base_url: {url}
    api_key_env: BUDGET_LLM_KEY
    retries: 0
"""


@pytest.fixture(scope="module")
def engine(
        tmp_path_factory: pytest.TempPathFactory, openai_server: OpenAITestServer) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("budgets")
    config = root / "caxton.yaml"
    config.write_text(CONFIG.format(url=openai_server.url))
    with running_engine(root, config=config, env={"BUDGET_LLM_KEY": KEY}) as process:
        yield process


def put(engine: EngineProcess, spec: dict[str, Any], module: bytes | None = None) -> httpx.Response:
    return httpx.put(f"{engine.url}{V1}/agents/{spec['name']}", json=deploy_body(spec, module), timeout=30)


def send(engine: EngineProcess, name: str, content: Any, cid: str | None = None) -> httpx.Response:
    return httpx.post(f"{engine.url}{V1}/agents/{name}/messages", json={"content": content, "conversation_id": cid},
                      timeout=60)


def wasm(name: str, version: str = "1.0.0", memory: str = "16MiB", pages: int = 1024) -> dict[str, Any]:
    return {"name": name, "version": version, "kind": "wasm", "module": f"{name}.wasm",
            "resource_limits": {"max_memory_bytes": memory}, "security_policy": {"max_memory_pages": pages}}


def chat(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "system_prompt": "You are {{ agent.name }}.", **extra}


def agent(engine: EngineProcess, name: str) -> httpx.Response:
    return httpx.get(f"{engine.url}{V1}/agents/{name}", timeout=30)


# --- the WASM memory budget --------------------------------------------------------------


def test_a_deploy_past_the_wasm_memory_budget_is_refused_and_changes_nothing(engine: EngineProcess) -> None:
    module = wat_module()
    assert put(engine, wasm("mem-a"), module).status_code == 200
    assert put(engine, wasm("mem-b"), module).status_code == 200  # 32 of 40 MiB

    refused = put(engine, wasm("mem-c"), module)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "limit_exceeded"
    assert "needs 16.0 MiB" in error["message"] and "reserve 32.0 MiB" in error["message"]
    assert "40.0 MiB (server.max_wasm_memory)" in error["message"]
    assert "mem-a 16.0 MiB" in error["message"] and "mem-b 16.0 MiB" in error["message"]
    assert "max_memory_bytes" in error["hint"] and "server.max_wasm_memory" in error["hint"]
    assert error["details"]["used"] == 32 * MIB and error["details"]["budget"] == 40 * MIB
    assert agent(engine, "mem-c").status_code == 404  # nothing recorded

    # A new revision replaces its agent's own reservation: b at 8 MiB fits, then c at 16 MiB (40 of 40).
    assert put(engine, wasm("mem-b", "1.1.0", "8MiB"), module).status_code == 200
    assert put(engine, wasm("mem-c"), module).status_code == 200
    before = agent(engine, "mem-b").json()
    grown = put(engine, wasm("mem-b", "1.2.0", "16MiB"), module)
    assert grown.status_code == 409 and grown.json()["error"]["details"]["used"] == 32 * MIB
    after = agent(engine, "mem-b").json()
    assert after["revision"] == before["revision"] and after["state"] == before["state"]
    assert send(engine, "mem-b", "still serving").status_code == 200  # the old revision keeps serving

    # Removing an agent frees its reservation. The reservation is the smaller of max_memory_bytes and
    # max_memory_pages: 1 GiB with 4 pages (256 KiB) fits, 1 GiB with 1024 pages (64 MiB) does not.
    assert httpx.delete(f"{engine.url}{V1}/agents/mem-c", timeout=30).status_code == 200
    assert put(engine, wasm("mem-d", memory="1GiB", pages=4), module).status_code == 200
    assert put(engine, wasm("mem-e", memory="1GiB"), module).status_code == 409
    for name in ("mem-a", "mem-b", "mem-d"):
        assert httpx.delete(f"{engine.url}{V1}/agents/{name}", timeout=30).status_code == 200
    assert put(engine, wasm("mem-e", memory="40MiB"), module).status_code == 200  # room again
    assert httpx.delete(f"{engine.url}{V1}/agents/mem-e", timeout=30).status_code == 200


def test_an_agent_over_4gib_of_memory_is_refused_at_deploy(engine: EngineProcess) -> None:
    refused = put(engine, wasm("huge", memory="5GiB", pages=65536), wat_module())
    assert refused.status_code == 422, refused.text
    assert "max_memory_bytes" in refused.text and "4294967296" in refused.text


def test_a_resume_past_the_budget_is_refused_and_the_agent_stays_suspended(engine: EngineProcess) -> None:
    module = wat_module()
    for name in ("keep-a", "keep-b"):
        assert put(engine, wasm(name), module).status_code == 200
    assert httpx.post(f"{engine.url}{V1}/agents/keep-b/suspend", json={}, timeout=30).status_code == 200
    assert put(engine, wasm("keep-c"), module).status_code == 200  # b's 16 MiB went with its suspension
    refused = httpx.post(f"{engine.url}{V1}/agents/keep-b/resume", json={}, timeout=30)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "limit_exceeded"
    assert agent(engine, "keep-b").json()["state"] == "Draining"  # still suspended, not failed
    assert httpx.delete(f"{engine.url}{V1}/agents/keep-c", timeout=30).status_code == 200
    assert httpx.post(f"{engine.url}{V1}/agents/keep-b/resume", json={}, timeout=30).status_code == 200
    for name in ("keep-a", "keep-b"):
        assert httpx.delete(f"{engine.url}{V1}/agents/{name}", timeout=30).status_code == 200


def test_recovery_under_a_lowered_budget_fails_the_agent_that_no_longer_fits(
        make_engine_inproc: Callable[..., Engine], tmp_path: Path) -> None:
    def config(budget: str) -> project.ProjectConfig:
        return project.ProjectConfig.model_validate(
            {"memory": {"enabled": False}, "server": {"max_wasm_memory": budget}})

    first = make_engine_inproc(config("40MiB"), tmp_path / "data")
    for name in ("keep-a", "keep-c"):
        first.deploy(wasm(name), wat_module())
    first.stop()
    second = make_engine_inproc(config("20MiB"), tmp_path / "data")
    states = {name: second.agent(name)["state"] for name in ("keep-a", "keep-c")}
    assert sorted(states.values()) == ["Failed", "Running"], states
    failed = next(name for name, state in states.items() if state == "Failed")
    messages = [event["message"] for event in second.agent(failed)["events"]]
    assert any("recovery failed" in m and "server.max_wasm_memory" in m for m in messages), messages


# --- byte caps: replies, prompts, history -------------------------------------------------


def test_a_provider_reply_over_max_reply_size_is_a_502_with_its_reason(engine: EngineProcess,
                                                                        openai_server: OpenAITestServer) -> None:
    assert put(engine, chat("talker", llm={"provider": "openai", "model": "m"})).status_code == 200
    text = "w" * (MIB + 10)  # over llm.max_reply_size (1 MiB here; 2 MiB by default), under the body limit
    openai_server.fail(1, status=200, body=json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}))
    answer = send(engine, "talker", "hello", "big")
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["details"]["reason"] == "reply_too_large" and "llm.max_reply_size" in error["message"]
    assert send(engine, "talker", "hello", "big").status_code == 200  # the next reply is fine
    assert httpx.delete(f"{engine.url}{V1}/agents/talker", timeout=30).status_code == 200


def test_the_provider_stops_reading_a_body_past_its_limit(openai_server: OpenAITestServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGET_LLM_KEY", KEY)
    provider = providers.OpenAICompatibleProvider(
        project.OpenAIProvider(base_url=openai_server.url, api_key_env="BUDGET_LLM_KEY", retries=0))
    try:
        huge = json.dumps({"choices": [{"message": {"role": "assistant", "content": "z" * 200_000}}]})
        openai_server.fail(1, status=200, body=huge)
        request = providers.CompletionRequest(
            agent="a", model="m", messages=(providers.ChatMessage(role="user", content="hi"),), temperature=0.0,
            max_tokens=16, deadline=time.monotonic() + 10, max_reply_size=1024)
        assert openai_wire.reply_body_limit(1024) < len(huge)
        with pytest.raises(errors.ConfigAgentFailure) as failed:
            provider.complete(request)
        assert failed.value.reason == "reply_too_large" and failed.value.http_status == 502
    finally:
        provider.close()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_thirty_200kb_messages_in_one_conversation_stay_bounded(engine: EngineProcess) -> None:
    """The issue's case: before, a 6 MB reply and +180 MB of engine memory."""
    assert put(engine, chat("big-talk")).status_code == 200
    assert engine.proc is not None
    sizes: list[int] = []
    rss: list[int] = []
    for i in range(30):
        answer = send(engine, "big-talk", f"<m{i:02d}>" + "x" * 200_000, "long")
        assert answer.status_code == 200, answer.text[:500]
        reply = answer.json()["reply"]["reply"]
        assert f"<m{i:02d}>" in reply  # this message is always in the prompt
        sizes.append(len(reply.encode()))
        if i == 4:
            rss.append(_rss(engine.proc.pid))
    rss.append(_rss(engine.proc.pid))
    assert max(sizes) <= 768 * 1024 + 4096, max(sizes)  # llm.max_prompt_size (768 KiB) bounds the offline echo
    assert "<m00>" not in reply and "<m28>" in reply  # the oldest turns left the window, the newest stayed
    assert rss[1] - rss[0] < 64 * MIB, f"the engine grew {(rss[1] - rss[0]) / MIB:.0f} MiB"
    assert httpx.delete(f"{engine.url}{V1}/agents/big-talk", timeout=30).status_code == 200


def test_a_prompt_whose_system_and_user_parts_pass_max_prompt_size_fails_with_its_reason(
        engine: EngineProcess) -> None:
    system = "{{ request }}{{ request }}"  # 400 KB + 400 KB > 768 KiB (the default 1 MiB would take it)
    user = "{{ request }}{{ request }}"
    assert put(engine, chat("wordy", system_prompt=system, user_prompt_template=user)).status_code == 200
    answer = send(engine, "wordy", "y" * 200_000)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["details"]["reason"] == "prompt_too_large" and "llm.max_prompt_size" in error["message"]
    assert send(engine, "wordy", "short").status_code == 200
    assert httpx.delete(f"{engine.url}{V1}/agents/wordy", timeout=30).status_code == 200


def test_max_history_size_bounds_what_the_engine_keeps_and_prompts(
        make_engine_inproc: Callable[..., Engine]) -> None:
    engine = make_engine_inproc(project.ProjectConfig.model_validate(
        {"memory": {"enabled": False}, "conversations": {"max_history_size": "4KiB"}}))
    engine.deploy(chat("short-memory"), None)
    replies = [engine.send("short-memory", f"<t{i}>" + "h" * 1500, "c")["reply"]["reply"] for i in range(4)]
    assert "<t0>" in replies[1] and "<t0>" not in replies[3] and "<t2>" in replies[3]
    assert sum(len(t["content"].encode()) for t in engine.ops.context.conversations.history("short-memory", "c")) \
        <= 4096


def test_history_is_bounded_in_bytes_oldest_first() -> None:
    store = conversations.InMemoryConversationStore(max_bytes=2048, max_turns=100)
    store.begin("a", "c", limit=10)
    for i in range(10):
        store.append("a", "c", [conversations.Turn(role="user", content=f"{i}" * 500)])
    history = store.history("a", "c")
    assert [t["content"][0] for t in history] == ["6", "7", "8", "9"]  # 4 x 500 bytes <= 2048
    store.append("a", "c", [conversations.Turn(role="user", content="é" * 3000)])  # one turn alone past the cap
    assert [len(t["content"]) for t in store.history("a", "c")] == [3000]  # the newest turn is kept


# --- conversation slots -----------------------------------------------------------------


def test_the_least_recently_used_idle_conversation_gives_its_slot() -> None:
    now = [0.0]
    store = conversations.InMemoryConversationStore(min_idle=10, clock=lambda: now[0])
    for name in ("c1", "c2", "c3"):
        store.begin("a", name, limit=3)
        store.finish("a", name)
        now[0] += 1
    with pytest.raises(errors.TooManyConversations) as refused:  # c1 idle 3 s < 10 s: all recent
        store.begin("a", "c4", limit=3)
    assert refused.value.http_status == 429 and "conversations.min_idle" in refused.value.message
    assert refused.value.retry_after == 7.0  # c1 has been idle 3 of the 10 s
    store.begin("a", "c1", limit=3)  # c1 is used again (and busy: no finish yet)
    now[0] = 100.0
    assert store.begin("a", "c4", limit=3)  # c2 (least recently used, idle) goes; c1 is busy
    assert store.begin("a", "c5", limit=3)  # then c3
    with pytest.raises(errors.TooManyConversations):  # c1 busy, c4 and c5 just opened
        store.begin("a", "c6", limit=3)
    assert store.count("a") == 3


def test_a_full_agent_takes_new_conversations_once_one_is_idle_and_the_evicted_one_continues(
        engine: EngineProcess) -> None:
    """100 conversations opened in a burst no longer lock an agent out for an hour (min_idle: 300ms here)."""
    assert put(engine, chat("slots", resource_limits={"max_conversations": 3})).status_code == 200
    for name in ("c1", "c2", "c3"):
        assert send(engine, "slots", f"hello from {name}", name).status_code == 200
    deadline = time.monotonic() + 20
    while True:  # 429 while the three are recent (timing-dependent), then c1 (least recently used) gives way
        answer = send(engine, "slots", "hello from c4", "c4")
        if answer.status_code == 200:
            break
        assert answer.status_code == 429 and answer.json()["error"]["code"] == "too_many_conversations"
        assert answer.headers["Retry-After"] == "1"  # min_idle (300 ms) rounded up to a second
        assert time.monotonic() < deadline, "no slot freed although conversations were idle"
        time.sleep(0.05)
    time.sleep(0.4)
    again = send(engine, "slots", "c1 again", "c1")  # evicts c2; c1's turns come back from the store
    assert again.status_code == 200, again.text
    assert "hello from c1" in again.json()["reply"]["reply"]
    assert httpx.delete(f"{engine.url}{V1}/agents/slots", timeout=30).status_code == 200


# --- the render deadline ------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_render_past_response_timeout_answers_504_promptly(engine: EngineProcess) -> None:
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    spec = chat("looper", system_prompt=loops, resource_limits={"response_timeout": "1s"})
    assert put(engine, spec).status_code == 200
    assert engine.proc is not None
    cpu = _cpu_seconds(engine.proc.pid)
    began = time.monotonic()
    answer = send(engine, "looper", "go")
    took = time.monotonic() - began
    burnt = _cpu_seconds(engine.proc.pid) - cpu
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["details"]["reason"] == "timeout"
    assert took < 2.0, f"504 after {took:.2f} s"
    assert burnt < 1.8, f"{burnt:.2f} s of CPU for one message"
    assert httpx.delete(f"{engine.url}{V1}/agents/looper", timeout=30).status_code == 200


def test_a_canary_counts_both_revisions_against_the_budget(make_engine_inproc: Callable[..., Engine]) -> None:
    engine = make_engine_inproc(project.ProjectConfig.model_validate(
        {"memory": {"enabled": False}, "server": {"max_wasm_memory": "40MiB"}}))
    module = wat_module()
    for name in ("canary-a", "canary-b"):
        engine.deploy(wasm(name), module)  # 32 of 40 MiB
    canary = {**wasm("canary-a", "1.1.0"), "rollout": {"strategy": "canary", "steps": [50, 100], "interval": 60}}
    with pytest.raises(errors.LimitExceeded, match="server.max_wasm_memory") as refused:
        engine.rollouts.start(Prepared.of(canary, module), Source(actor="test"), strategy="canary")
    assert refused.value.details["used"] == 32 * MIB  # revision 1 of canary-a still counts beside its candidate
    assert engine.agent("canary-a")["revision"] == 1
    assert engine.deploy(wasm("canary-a", "1.1.0"), module).action == "deployed"  # at once: it replaces revision 1
