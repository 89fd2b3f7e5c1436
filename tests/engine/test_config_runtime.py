"""The config-agent runtime: templates, conversations, limits, sandbox, timeouts, providers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from caxton import errors
from caxton.llm import config_runtime, providers
from caxton.engine.serving import conversations
from caxton.llm.conversations import ConversationStore
from caxton.spec import agent as agent_spec
from caxton.spec import project
from tests.support.openai_server import OpenAITestServer, running_openai_server

ENV = "CAXTON_TEST_RUNTIME_KEY"


def make_spec(**fields: Any) -> agent_spec.ConfigAgent:
    data: dict[str, Any] = {"name": "helper", "version": "1.0.0", "system_prompt": "You are {{ agent.name }}."}
    data.update(fields)
    spec = agent_spec.parse_agent(data)
    assert isinstance(spec, agent_spec.ConfigAgent)
    return spec


def make_runtime(
    spec: agent_spec.ConfigAgent,
    *,
    revision: int = 1,
    store: ConversationStore | None = None,
    registry: providers.ProviderRegistry | None = None,
) -> config_runtime.ConfigAgentRuntime:
    runtime = config_runtime.ConfigAgentRuntime(
        spec,
        revision=revision,
        providers=registry if registry is not None else {"offline": providers.OfflineProvider()},
        conversations=store if store is not None else conversations.InMemoryConversationStore(),
    )
    runtime.start()
    return runtime


def send(runtime: config_runtime.ConfigAgentRuntime, content: Any, cid: str | None = None) -> dict[str, Any]:
    envelope = {"id": "m", "agent": runtime.spec.id, "revision": runtime.revision, "content": content, "conversation_id": cid}
    reply = runtime.handle(envelope)
    assert isinstance(reply, dict)
    return reply


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAITestServer]:
    monkeypatch.setenv(ENV, "sk-runtime-test")
    with running_openai_server() as srv:
        yield srv


def openai_registry(url: str, **settings: Any) -> dict[str, providers.LLMProvider]:
    config = project.LLMProviders(openai=project.OpenAIProvider(base_url=url, api_key_env=ENV, **settings))
    return providers.build_providers(config)


# --- templates -----------------------------------------------------------------------


def test_offline_reply_shows_the_rendered_system_and_user_prompts() -> None:
    spec = make_spec(
        parameters={"tone": "formal", "limit": 3},
        user_prompt_template="Answer {{ parameters.tone }}ly (max {{ parameters.limit }}): {{ request }}",
    )
    reply = send(make_runtime(spec, revision=7), "why is the sky blue?")
    assert reply["provider"] == "offline" and reply["model"] == "offline" and reply["conversation_id"] is None
    assert "### system\nYou are helper." in reply["reply"]
    assert "### user\nAnswer formally (max 3): why is the sky blue?" in reply["reply"]


def test_without_a_user_template_the_request_is_the_user_prompt_and_json_is_text() -> None:
    runtime = make_runtime(make_spec(system_prompt="rev {{ agent.revision }} v{{ agent.version }}"), revision=4)
    reply = send(runtime, {"order": 42, "items": ["a", "b"]})
    assert "### system\nrev 4 v1.0.0" in reply["reply"]
    assert '### user\n{"order": 42, "items": ["a", "b"]}' in reply["reply"]


def test_the_offline_reply_is_deterministic() -> None:
    first = send(make_runtime(make_spec()), "same")["reply"]
    assert send(make_runtime(make_spec()), "same")["reply"] == first


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ request.__class__.__base__.__subclasses__() }}",
        "{{ parameters.__init__.__globals__ }}",
        "{% set x = parameters.update({'a': 1}) %}{{ x }}",
    ],
)
def test_sandbox_escapes_fail_the_message_with_a_clear_error(template: str) -> None:
    runtime = make_runtime(make_spec(system_prompt=template, parameters={"k": 1}))
    with pytest.raises(errors.ConfigAgentFailure) as caught:
        send(runtime, "hi")
    assert caught.value.reason == "template" and "system_prompt" in caught.value.message
    assert "sandbox" in caught.value.message or "unsafe" in caught.value.message
    assert runtime.stats()["failures_by_reason"] == {"template": 1}


def test_an_undefined_variable_fails_the_message_and_lists_what_exists() -> None:
    runtime = make_runtime(make_spec(user_prompt_template="{{ requets }}"))
    with pytest.raises(errors.ConfigAgentFailure, match="user_prompt_template") as caught:
        send(runtime, "hi")
    assert "memory_context" in str(caught.value.hint)


def test_a_template_syntax_error_refuses_to_start() -> None:
    runtime = config_runtime.ConfigAgentRuntime(
        make_spec(system_prompt="{% if %}"),
        revision=1,
        providers={"offline": providers.OfflineProvider()},
        conversations=conversations.InMemoryConversationStore(),
    )
    with pytest.raises(errors.InvalidInput, match="system_prompt is not a valid template"):
        runtime.start()


def test_memory_context_is_empty_without_a_memory() -> None:
    spec = make_spec(memory={"enabled": True}, user_prompt_template="[{{ memory_context }}] {{ request }}")
    assert "### user\n[] q" in send(make_runtime(spec), "q")["reply"]


# --- conversations -------------------------------------------------------------------


def test_history_grows_per_conversation_and_is_kept_apart() -> None:
    runtime = make_runtime(make_spec())
    first = send(runtime, "my name is Ada", "c1")
    second = send(runtime, "what is my name?", "c1")
    other = send(runtime, "what is my name?", "c2")
    assert first["conversation_id"] == "c1"
    first_header = first["reply"].splitlines()[0]
    assert f"### user\nmy name is Ada\n### assistant\n{first_header} (" in second["reply"]
    assert "Ada" not in other["reply"]
    assert runtime.stats()["conversations"] == 2 and runtime.stats()["messages"] == 3


def test_history_is_available_to_templates() -> None:
    template = "{% for t in history %}{{ t.role }}={{ t.content|length }};{% endfor %}now: {{ request }} in {{ conversation_id }}"
    runtime = make_runtime(make_spec(user_prompt_template=template))
    send(runtime, "abc", "c")
    assert "### user\nuser=3;assistant=" in send(runtime, "next", "c")["reply"]


def test_history_survives_a_hot_reload_to_a_new_revision() -> None:
    store = conversations.InMemoryConversationStore()
    old = make_runtime(make_spec(), revision=1, store=store)
    send(old, "remember 7", "c")
    old.stop()
    new = make_runtime(make_spec(version="1.1.0"), revision=2, store=store)
    assert "### user\nremember 7" in send(new, "what number?", "c")["reply"]
    with pytest.raises(errors.Unavailable, match="revision 1 is stopped"):
        send(old, "late", "c")


def test_max_conversations_refuses_new_ones_but_serves_existing_and_stateless() -> None:
    runtime = make_runtime(make_spec(resource_limits={"max_conversations": 2}))
    send(runtime, "a", "c1")
    send(runtime, "b", "c2")
    with pytest.raises(errors.TooManyConversations, match="max_conversations") as caught:
        send(runtime, "c", "c3")
    assert caught.value.http_status == 429 and caught.value.hint
    assert send(runtime, "again", "c1")["conversation_id"] == "c1"
    assert send(runtime, "no id")["conversation_id"] is None
    assert runtime.stats()["failures_by_reason"] == {"too_many_conversations": 1}


def test_idle_conversations_expire_and_free_their_slot() -> None:
    now = [0.0]
    store = conversations.InMemoryConversationStore(idle_ttl=60, clock=lambda: now[0])
    runtime = make_runtime(make_spec(resource_limits={"max_conversations": 1}), store=store)
    send(runtime, "a", "old")
    now[0] = 61.0
    send(runtime, "b", "new")
    assert store.count("helper") == 1 and store.history("helper", "old") == []


def test_a_failed_first_message_does_not_hold_a_conversation_slot() -> None:
    store = conversations.InMemoryConversationStore()
    broken = make_runtime(make_spec(system_prompt="{{ nope }}", resource_limits={"max_conversations": 1}), store=store)
    with pytest.raises(errors.ConfigAgentFailure):
        send(broken, "a", "c1")
    assert store.count("helper") == 0


def test_the_conversation_limit_holds_under_concurrency() -> None:
    store = conversations.InMemoryConversationStore()
    created: list[bool] = []
    refused: list[str] = []

    def open_one(i: int) -> None:
        try:
            created.append(store.begin("agent", f"c{i}", limit=5))
        except errors.TooManyConversations:
            refused.append(f"c{i}")

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created.count(True) == 5 and len(refused) == 35 and store.count("agent") == 5


def test_offline_replies_stay_small_in_long_conversations() -> None:
    runtime = make_runtime(make_spec())
    sizes = [len(send(runtime, f"message {i}", "c")["reply"]) for i in range(30)]
    assert sizes[-1] < 4000 and sizes[-1] - sizes[-2] < 200


def test_history_keeps_the_last_max_turns() -> None:
    store = conversations.InMemoryConversationStore(max_turns=4)
    runtime = make_runtime(make_spec(), store=store)
    for i in range(5):
        send(runtime, f"m{i}", "c")
    assert [t["content"] for t in store.history("helper", "c") if t["role"] == "user"] == ["m3", "m4"]


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "error"),
    [
        ({"conversation_id": "c"}, errors.InvalidInput),
        ({"content": "x", "conversation_id": 5}, errors.InvalidInput),
        ({"content": "x", "conversation_id": "  "}, errors.InvalidInput),
        ({"content": "x" * 2000}, errors.PayloadTooLarge),
    ],
)
def test_bad_messages_are_refused_with_4xx(envelope: dict[str, Any], error: type[errors.CaxtonError]) -> None:
    runtime = make_runtime(make_spec(resource_limits={"max_message_size": "1KB"}))
    with pytest.raises(error) as caught:
        runtime.handle(envelope)
    assert 400 <= caught.value.http_status < 500


def test_an_unstarted_runtime_is_unavailable() -> None:
    runtime = config_runtime.ConfigAgentRuntime(
        make_spec(), revision=1, providers={}, conversations=conversations.InMemoryConversationStore()
    )
    with pytest.raises(errors.Unavailable):
        runtime.handle({"content": "x"})
    with pytest.raises(errors.InvalidInput, match="no LLM provider 'offline'"):
        runtime.start()


# --- through the openai provider ---------------------------------------------------------


def test_openai_agent_sends_system_history_and_user_messages(server: OpenAITestServer) -> None:
    spec = make_spec(llm={"provider": "openai", "model": "tiny-1", "max_tokens": 50})
    runtime = make_runtime(spec, registry=openai_registry(server.url))
    first = send(runtime, "one", "c")
    second = send(runtime, "two", "c")
    rounds = first.pop("rounds")  # one request to the provider, no tool calls (the trace of `send --trace`)
    assert [(r["round"], r["tool_calls"]) for r in rounds] == [(1, [])] and rounds[0]["duration_ms"] >= 0
    assert first == {"reply": "echo(tiny-1) #2: one", "conversation_id": "c", "provider": "openai", "model": "tiny-1"}
    assert second["reply"] == "echo(tiny-1) #4: two"
    roles = [m["role"] for m in server.requests[-1].body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_response_timeout_fails_the_message_with_reason_timeout(server: OpenAITestServer) -> None:
    server.delay = 1.0
    spec = make_spec(llm={"provider": "openai", "model": "slow"}, resource_limits={"response_timeout": "300ms"})
    runtime = make_runtime(spec, registry=openai_registry(server.url, retries=3))
    started = time.monotonic()
    with pytest.raises(errors.AgentFailure) as caught:
        send(runtime, "hurry")
    assert isinstance(caught.value, errors.ConfigAgentFailure) and caught.value.reason == "timeout"
    assert caught.value.http_status == 504 and time.monotonic() - started < 0.9
    assert runtime.stats()["failures_by_reason"] == {"timeout": 1}


def test_an_openai_agent_without_its_key_refuses_to_start(server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV)
    runtime = config_runtime.ConfigAgentRuntime(
        make_spec(llm={"provider": "openai", "model": "m"}),
        revision=1,
        providers=openai_registry(server.url),
        conversations=conversations.InMemoryConversationStore(),
    )
    with pytest.raises(errors.ConfigAgentFailure, match=ENV):
        runtime.start()
