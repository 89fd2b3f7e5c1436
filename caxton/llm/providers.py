"""LLM providers of config agents: one Protocol, two providers, one registry.

The engine builds the providers once from ``ProjectConfig.llm`` with
``build_providers`` and hands the mapping to every
``caxton.llm.config_runtime.ConfigAgentRuntime``, which picks one by the
agent's ``llm.provider`` and calls ``complete``. Providers are shared by all
agents and revisions and must be thread-safe.

- ``offline``: deterministic, no network. Its reply is the fully rendered
  prompt plus a short digest, so operators can test templates with it. Given
  tools, it first asks for the calls written as ``/tool <name> <json>`` lines
  in the last user message (``offline_tool_calls``; docs/tools.md).
- ``openai``: any OpenAI-compatible ``POST {base_url}/chat/completions`` (with
  ``tools`` when the request has some; an answer's ``tool_calls`` become
  ``Completion.tool_calls``). Tool names outside OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``
  (an MCP tool ``server.tool``) are sent as ``openai_wire.wire_name`` (``server__tool``) and
  mapped back in the answer. The
  key is read from the environment variable named by ``api_key_env`` at call
  time and never logged or put in an error (upstream text is redacted).
  Connect errors, timeouts, 429 and 5xx are retried with exponential backoff
  (``retries`` times, never past the message's deadline); other 4xx are not.
  The answer's body is read streamed and given up past ``openai_wire.reply_body_limit``
  of the request's ``max_reply_size`` (reason ``reply_too_large``), so a
  runaway endpoint cannot fill the engine's memory.

httpx is imported only when the ``openai`` provider is first used.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict

from caxton import errors
from caxton.llm import openai_wire
from caxton.spec import agent as agent_spec
from caxton.spec import digest, project
from caxton.spec.jsonvalues import loads_strict

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

OFFLINE_MODEL_PLACEHOLDER = "offline"
RETRYABLE_REASONS = frozenset({"unreachable", "timeout", "rate_limited", "upstream_error"})
#: Default of ``CompletionRequest.max_reply_size`` (caxton.yaml ``llm.max_reply_size``).
DEFAULT_MAX_REPLY_SIZE = 2 * 1024 * 1024
_OFFLINE_HEADER = "[offline "


class ChatMessage(TypedDict):
    """One message of a chat completion; ``tool_calls`` on an assistant turn, ``tool_call_id`` on a tool result."""

    role: str
    content: str
    tool_calls: NotRequired[list[dict[str, Any]]]
    tool_call_id: NotRequired[str]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asks for: ``arguments`` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str

    def as_message_part(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class CompletionRequest:
    """One chat completion to run; ``deadline`` is a ``time.monotonic()`` instant."""

    agent: str
    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float
    max_tokens: int
    deadline: float
    #: Bytes (UTF-8) of the reply's text the engine accepts; a provider may stop reading past it.
    max_reply_size: int = DEFAULT_MAX_REPLY_SIZE
    #: OpenAI-style function declarations (``caxton.llm.tools.ToolRegistry.function_specs``); empty: no tools.
    tools: tuple[dict[str, Any], ...] = ()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(frozen=True)
class Completion:
    """The model's answer: final when ``tool_calls`` is empty, else the calls it asks for (``text`` may be '')."""

    text: str
    model: str
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()


class LLMProvider(Protocol):
    """What the config-agent runtime needs from a provider."""

    name: str

    def model_for(self, llm: agent_spec.LLMSpec) -> str:
        """The model this provider will call for an agent's ``llm`` section (raises InvalidInput)."""
        ...

    def check(self) -> None:
        """Raise ``errors.ConfigAgentFailure`` if the provider cannot work (e.g. missing key)."""
        ...

    def complete(self, request: CompletionRequest) -> Completion:
        """Answer; failures raise ``errors.ConfigAgentFailure`` with a ``reason``."""
        ...

    def close(self) -> None: ...


ProviderRegistry = Mapping[str, LLMProvider]
ProviderFactory = Callable[[project.LLMProviders], LLMProvider]


# --- offline ------------------------------------------------------------------


class OfflineProvider:
    """Deterministic provider: replies with the rendered prompt and its digest."""

    name = "offline"

    @classmethod
    def from_settings(cls, settings: project.LLMProviders) -> OfflineProvider:
        return cls()

    def model_for(self, llm: agent_spec.LLMSpec) -> str:
        return llm.model

    def check(self) -> None:
        return None

    def complete(self, request: CompletionRequest) -> Completion:
        calls = offline_tool_calls(request.messages) if request.tools else ()
        if calls:
            return Completion(text="", model=request.model, tool_calls=calls)
        return Completion(text=render_offline_reply(request.model, request.messages), model=request.model)

    def close(self) -> None:
        return None


_TOOL_LINE = re.compile(r"^/tool\s+(\S+)(?:\s+(.*))?$")


def offline_tool_calls(messages: tuple[ChatMessage, ...]) -> tuple[ToolCall, ...]:
    """The calls the offline provider asks for: one per ``/tool <name> <json arguments>`` line of the last
    user message, all at once, the first time it answers that message (after the results, it answers with
    the transcript). Arguments default to ``{}``; they are passed on as written (bad JSON included)."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    if last_user < 0 or any(m["role"] == "tool" for m in messages[last_user:]):
        return ()
    calls: list[ToolCall] = []
    for line in messages[last_user]["content"].splitlines():
        match = _TOOL_LINE.match(line.strip())
        if match:
            calls.append(ToolCall(f"call_{len(calls) + 1}", match.group(1), (match.group(2) or "{}").strip()))
    return tuple(calls)


def prompt_digest(model: str, messages: tuple[ChatMessage, ...]) -> str:
    """12 hex digits identifying a rendered prompt (stable across runs and machines)."""
    payload = {"model": model, "messages": [dict(m) for m in messages]}
    return digest.sha256_hex(digest.canonical_json(payload))[:12]


def render_offline_reply(model: str, messages: tuple[ChatMessage, ...]) -> str:
    """Header line, then every message; earlier offline replies shrink to their header.

    Without that shrinking each reply would contain all earlier replies in
    full, and a conversation's history would grow exponentially.
    """
    sections = [f"### {_offline_role(m)}\n{_shrink_offline(m)}" for m in messages]
    header = f"{_OFFLINE_HEADER}model={model} digest={prompt_digest(model, messages)}]"
    return "\n".join([header, *sections])


def _offline_role(message: ChatMessage) -> str:
    if message.get("tool_call_id"):
        return f"tool {message['tool_call_id']}"
    return message["role"]


def _shrink_offline(message: ChatMessage) -> str:
    content = message["content"]
    if message.get("tool_calls"):
        return "\n".join(f"{c['id']}: {c['function']['name']} {c['function']['arguments']}"
                         for c in message["tool_calls"])
    if message["role"] != "assistant" or not content.startswith(_OFFLINE_HEADER):
        return content
    header = content.split("\n", 1)[0]
    return f"{header} ({len(content)} characters, shown by digest)"


# --- OpenAI-compatible ---------------------------------------------------------


class _Retry(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, failure: errors.ConfigAgentFailure, retry_after: float | None = None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.retry_after = retry_after


class OpenAICompatibleProvider:
    """Any OpenAI-compatible chat-completions endpoint, over httpx."""

    name = "openai"

    def __init__(
        self,
        settings: project.OpenAIProvider,
        *,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._environ = environ
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: project.LLMProviders) -> OpenAICompatibleProvider:
        return cls(settings.openai)

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider(url={self._url!r}, api_key_env={self._settings.api_key_env!r})"

    def model_for(self, llm: agent_spec.LLMSpec) -> str:
        if llm.model != OFFLINE_MODEL_PLACEHOLDER:
            return llm.model
        if self._settings.model:
            return self._settings.model
        raise errors.InvalidInput(
            "the agent uses llm.provider 'openai' but names no model",
            hint="set llm.model in the agent file (e.g. gpt-4o-mini) or llm.openai.model in caxton.yaml",
        )

    def check(self) -> None:
        self._api_key()

    def complete(self, request: CompletionRequest) -> Completion:
        key = self._api_key()
        messages: list[dict[str, Any]] = [dict(m) for m in request.messages]
        if request.tools:
            wire = openai_wire.wire_names(openai_wire.tool_names(request.tools))
            messages = [openai_wire.renamed_calls(m, wire) for m in messages]
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.tools:
            body["tools"] = [openai_wire.renamed_spec(t, wire) for t in request.tools]
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(body, key, request, attempt)
            except _Retry as retry:
                delay = self._delay(attempt, retry.retry_after)
                if attempt > self._settings.retries or request.remaining() <= delay:
                    raise retry.failure from None
                log.warning(
                    "openai provider (agent %s): attempt %d failed: %s; retrying in %.2fs",
                    request.agent, attempt, retry.failure.message, delay,
                )
                time.sleep(delay)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- one attempt ------------------------------------------------------------

    def _attempt(self, body: dict[str, Any], key: str, request: CompletionRequest, attempt: int) -> Completion:
        import httpx

        budget = min(self._settings.timeout, request.remaining())
        if budget <= 0:
            raise self._failure("timeout", "the response_timeout ran out before the provider answered", attempt)
        try:
            with self._http().stream(
                "POST", self._url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=budget
            ) as response:
                raw = self._body(response, openai_wire.reply_body_limit(request.max_reply_size), attempt)
        except httpx.TimeoutException:
            failure = self._failure("timeout", f"no answer from {self._url} within {budget:.2f}s", attempt)
            if request.remaining() <= 0:
                raise failure from None
            raise _Retry(failure) from None
        except httpx.TransportError as exc:
            message = f"cannot reach {self._url}: {openai_wire.redact(str(exc) or type(exc).__name__, key)}"
            raise _Retry(self._failure("unreachable", message, attempt)) from None
        return self._read(response, raw, key, request, attempt)

    def _body(self, response: httpx.Response, limit: int, attempt: int) -> bytes:
        """The answer's body, read up to ``limit`` bytes; past it, a ``reply_too_large`` failure."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise self._failure("reply_too_large", f"{self._url} answered more than {limit:,} bytes "
                                    "(llm.max_reply_size, JSON-escaped)", attempt)
            chunks.append(chunk)
        return b"".join(chunks)

    def _read(
        self, response: httpx.Response, raw: bytes, key: str, request: CompletionRequest, attempt: int,
    ) -> Completion:
        status = response.status_code
        if status == 200:
            return self._parse(raw, key, request, attempt)
        excerpt = openai_wire.redact(openai_wire.error_text(raw, response.reason_phrase), key)
        if status in (401, 403):
            raise self._failure("unauthorized", f"{self._url} refused the API key ({status}): {excerpt}", attempt)
        if status == 429:
            failure = self._failure("rate_limited", f"{self._url} is rate limiting (429): {excerpt}", attempt)
            raise _Retry(failure, openai_wire.retry_after(response))
        if status >= 500:
            raise _Retry(self._failure("upstream_error", f"{self._url} failed ({status}): {excerpt}", attempt))
        raise self._failure("rejected", f"{self._url} rejected the request ({status}): {excerpt}", attempt)

    def _parse(self, raw: bytes, key: str, request: CompletionRequest, attempt: int) -> Completion:
        try:
            data = loads_strict(raw)
            message = data["choices"][0]["message"]
            sent = openai_wire.wire_names(openai_wire.tool_names(request.tools))
            calls = _tool_calls(message.get("tool_calls"), {w: n for n, w in sent.items()})
            text = message.get("content") if calls else message["content"]
            text = "" if text is None and calls else text
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            excerpt = openai_wire.redact(raw[:openai_wire.EXCERPT].decode("utf-8", "replace"), key)
            message = f"{self._url} answered 200 but not a chat completion ({exc}): {excerpt!r}"
            raise self._failure("bad_response", message, attempt) from None
        model = data.get("model") if isinstance(data.get("model"), str) else request.model
        return Completion(text=text, model=model, usage=openai_wire.usage(data.get("usage")), tool_calls=calls)

    # -- helpers -----------------------------------------------------------------

    def _http(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._settings.timeout, trust_env=False)
            return self._client

    def _api_key(self) -> str:
        env = self._settings.api_key_env
        value = (self._environ if self._environ is not None else os.environ).get(env, "")
        if not value.strip():
            raise errors.ConfigAgentFailure(
                f"the openai provider needs an API key, but environment variable {env} is not set",
                reason="missing_api_key",
                hint=f"export {env}=<key> in the engine's environment, "
                "or name another variable in caxton.yaml under llm.openai.api_key_env",
                details={"provider": self.name, "api_key_env": env},
            )
        return value.strip()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self._max_backoff, self._backoff * 2.0 ** (attempt - 1))
        return max(delay, min(retry_after, self._max_backoff)) if retry_after else delay

    def _failure(self, reason: str, message: str, attempt: int) -> errors.ConfigAgentFailure:
        return errors.ConfigAgentFailure(
            f"openai provider: {message}",
            reason=reason,
            hint=openai_wire.HINTS.get(reason, "").format(env=self._settings.api_key_env) or None,
            details={"provider": self.name, "url": self._url, "attempts": attempt},
        )


def _tool_calls(raw: Any, names: Mapping[str, str] | None = None) -> tuple[ToolCall, ...]:
    """The ``tool_calls`` of an answer's message, names mapped back from ``wire_name`` (``names``: wire -> name);
    raises TypeError/KeyError when malformed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TypeError("tool_calls is not a list")
    calls = []
    for item in raw:
        function = item["function"]
        name, arguments = function["name"], function.get("arguments") or "{}"
        if not isinstance(item["id"], str) or not isinstance(name, str) or not isinstance(arguments, str):
            raise TypeError("a tool call's id, name and arguments are strings")
        calls.append(ToolCall(item["id"], (names or {}).get(name, name), arguments))
    return tuple(calls)


# --- the registry --------------------------------------------------------------

PROVIDERS: dict[str, ProviderFactory] = {
    "offline": OfflineProvider.from_settings,
    "openai": OpenAICompatibleProvider.from_settings,
}


def build_providers(settings: project.LLMProviders) -> dict[str, LLMProvider]:
    """One provider per registered name, configured from ``caxton.yaml``'s ``llm`` section.

    Cheap: nothing connects and no key is read until a provider is used.
    """
    return {name: factory(settings) for name, factory in PROVIDERS.items()}


def close_providers(providers: ProviderRegistry) -> None:
    """Release connections (engine shutdown)."""
    for provider in providers.values():
        provider.close()
