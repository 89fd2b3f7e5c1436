"""LLM providers: the offline one, and the OpenAI-compatible one against a real local server."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from caxton import errors
from caxton.llm import openai_wire, providers
from caxton.spec import agent as agent_spec
from caxton.spec import project
from tests.support.openai_server import OpenAITestServer, running_openai_server
from tests.support.paths import free_port

KEY = "sk-test-SECRET-0123456789"
ENV = "CAXTON_TEST_LLM_KEY"


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with running_openai_server() as srv:
        yield srv


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, KEY)
    return KEY


_OPENED: list[providers.OpenAICompatibleProvider] = []


@pytest.fixture(autouse=True)
def _close_providers() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def openai(url: str, *, retries: int = 2, timeout: float = 5.0, model: str | None = None) -> providers.OpenAICompatibleProvider:
    """A provider with fast backoff; closed after the test."""
    settings = project.OpenAIProvider(base_url=url, api_key_env=ENV, retries=retries, timeout=timeout, model=model)
    provider = providers.OpenAICompatibleProvider(settings, backoff=0.01, max_backoff=0.05)
    _OPENED.append(provider)
    return provider


def request(text: str = "hello", *, timeout: float = 10.0) -> providers.CompletionRequest:
    messages = (
        providers.ChatMessage(role="system", content="You are terse."),
        providers.ChatMessage(role="user", content=text),
    )
    return providers.CompletionRequest(
        agent="a", model="m-1", messages=messages, temperature=0.0, max_tokens=64, deadline=time.monotonic() + timeout
    )


def failure_of(provider: providers.OpenAICompatibleProvider, req: providers.CompletionRequest) -> errors.ConfigAgentFailure:
    with pytest.raises(errors.ConfigAgentFailure) as caught:
        provider.complete(req)
    return caught.value


# --- registry and offline ---------------------------------------------------------


def test_registry_builds_every_provider_from_the_project_config() -> None:
    built = providers.build_providers(project.ProjectConfig().llm)
    assert set(built) == set(providers.PROVIDERS) == {"offline", "openai"}
    assert all(built[name].name == name for name in built)


def test_offline_reply_contains_the_whole_prompt_and_a_stable_digest() -> None:
    offline = providers.OfflineProvider()
    first = offline.complete(request("what is 2+2?"))
    again = offline.complete(request("what is 2+2?"))
    other = offline.complete(request("what is 3+3?"))
    assert first.text == again.text
    assert first.text.splitlines()[0].startswith("[offline model=m-1 digest=")
    assert "### system\nYou are terse." in first.text and "### user\nwhat is 2+2?" in first.text
    assert providers.prompt_digest("m-1", request("what is 2+2?").messages) in first.text
    assert first.text.splitlines()[0] != other.text.splitlines()[0]


def test_openai_model_comes_from_the_agent_or_the_project_config() -> None:
    assert openai("http://127.0.0.1:1/v1").model_for(agent_spec.LLMSpec(provider="openai", model="gpt-x")) == "gpt-x"
    assert openai("http://127.0.0.1:1/v1", model="dflt").model_for(agent_spec.LLMSpec(provider="openai")) == "dflt"
    with pytest.raises(errors.InvalidInput, match="names no model"):
        openai("http://127.0.0.1:1/v1").model_for(agent_spec.LLMSpec(provider="openai"))


# --- openai against the local server ---------------------------------------------------


def test_openai_success_sends_the_chat_and_the_key(server: OpenAITestServer, api_key: str) -> None:
    completion = openai(server.url).complete(request("ping"))
    assert completion.text == "echo(m-1) #2: ping"
    assert completion.model == "m-1" and completion.usage["total_tokens"] == 3
    (received,) = server.requests
    assert received.headers["authorization"] == f"Bearer {api_key}"
    assert received.body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert received.body["max_tokens"] == 64 and received.body["temperature"] == 0.0


def test_openai_retries_500_then_succeeds(server: OpenAITestServer, api_key: str) -> None:
    server.fail(2, status=500)
    assert openai(server.url, retries=2).complete(request("x")).text.endswith(": x")
    assert len(server.requests) == 3


def test_openai_gives_up_after_the_configured_retries(server: OpenAITestServer, api_key: str) -> None:
    server.fail(5, status=503)
    failure = failure_of(openai(server.url, retries=1), request())
    assert failure.reason == "upstream_error" and "503" in failure.message
    assert failure.details["attempts"] == 2 and len(server.requests) == 2


def test_openai_retries_429_honouring_retry_after(server: OpenAITestServer, api_key: str) -> None:
    server.fail(1, status=429, headers={"retry-after": "0.02"})
    assert openai(server.url).complete(request("y")).text.endswith(": y")
    assert len(server.requests) == 2


def test_openai_does_not_retry_401_and_says_which_variable(server: OpenAITestServer, api_key: str) -> None:
    server.fail(3, status=401, body='{"error": {"message": "Incorrect API key provided"}}')
    failure = failure_of(openai(server.url), request())
    assert len(server.requests) == 1
    assert failure.reason == "unauthorized" and "Incorrect API key provided" in failure.message
    assert ENV in str(failure.hint) and failure.http_status == 502


def test_openai_does_not_retry_other_4xx(server: OpenAITestServer, api_key: str) -> None:
    server.fail(3, status=404, body='{"error": {"message": "model m-1 does not exist"}}')
    failure = failure_of(openai(server.url), request())
    assert failure.reason == "rejected" and "model m-1 does not exist" in failure.message
    assert len(server.requests) == 1


def test_openai_timeout_is_a_timeout_failure(server: OpenAITestServer, api_key: str) -> None:
    server.delay = 1.0
    started = time.monotonic()
    failure = failure_of(openai(server.url, retries=0, timeout=0.2), request())
    assert failure.reason == "timeout" and failure.http_status == 504
    assert time.monotonic() - started < 0.9


def test_openai_never_retries_past_the_deadline(server: OpenAITestServer, api_key: str) -> None:
    server.fail(10, status=500)
    server.delay = 0.15
    started = time.monotonic()
    failure = failure_of(openai(server.url, retries=5, timeout=5), request(timeout=0.4))
    assert failure.reason in ("timeout", "upstream_error")
    assert len(server.requests) < 4
    assert time.monotonic() - started < 1.0


def test_openai_garbage_reply_is_a_bad_response(server: OpenAITestServer, api_key: str) -> None:
    server.garbage = True
    failure = failure_of(openai(server.url), request())
    assert failure.reason == "bad_response" and "not a chat completion" in failure.message
    assert len(server.requests) == 1


def test_openai_unreachable_endpoint(api_key: str) -> None:
    failure = failure_of(openai(f"http://127.0.0.1:{free_port()}/v1", retries=1), request())
    assert failure.reason == "unreachable" and failure.details["attempts"] == 2
    assert "base_url" in str(failure.hint)


def test_openai_missing_key_names_the_variable(server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    provider = openai(server.url)
    with pytest.raises(errors.ConfigAgentFailure, match=ENV) as caught:
        provider.check()
    assert caught.value.reason == "missing_api_key"
    assert failure_of(provider, request()).reason == "missing_api_key"
    assert server.requests == []


def test_the_key_never_appears_in_errors_or_logs(
    server: OpenAITestServer, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f'{{"error": {{"message": "bad key {api_key}"}}}}'
    server.fail(1, status=500, body=echo)
    server.fail(1, status=401, body=echo)
    provider = openai(server.url)
    failure = failure_of(provider, request())
    assert failure.reason == "unauthorized" and "***" in failure.message
    rendered = str(failure) + repr(failure.to_dict()) + repr(provider)
    assert api_key not in rendered
    assert caplog.records and api_key not in caplog.text


def test_tool_names_outside_openais_pattern_are_sent_as_wire_names() -> None:
    assert openai_wire.wire_name("calculator") == "calculator"
    assert openai_wire.wire_name("wiki.search") == "wiki__search"
    assert openai_wire.wire_name("files.read/v2") == "files__read_v2"
    long_one = openai_wire.wire_name("server." + "t" * 100)
    assert len(long_one) == 64 and long_one != openai_wire.wire_name("server." + "t" * 99)
    assert len({openai_wire.wire_name(n) for n in ("a_b.c", "a.b_c", "a_b_c")}) == 3
    clash = openai_wire.wire_names(["a.b", "a__b"])  # the second one's wire name is taken: it ends in its hash
    assert clash["a.b"] == "a__b" and clash["a__b"].startswith("a__b_") and len(clash["a__b"]) == 13
