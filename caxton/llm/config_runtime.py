"""The runtime of one config-agent revision: render the prompts, call the LLM provider.

The engine (``caxton.engine.operations`` / the router) creates one
``ConfigAgentRuntime`` per deployed revision and drives it through the
``caxton.engine.serving.runtime.AgentRuntime`` shape: ``start`` / ``handle`` /
``stop`` / ``stats``. Per message it:

1. checks the envelope (``content``, optional ``conversation_id``) and the
   agent's ``max_message_size``;
2. opens or continues the conversation (``max_conversations`` enforced by the
   ``ConversationStore``; messages without an id are stateless);
3. asks memory for context when ``memory.enabled`` and a memory was given;
4. renders ``system_prompt`` and ``user_prompt_template`` in the sandboxed
   Jinja2 environment of ``caxton.rules.templates``, bounded in output
   size and time (``caxton.llm.templating``, caxton.yaml ``templates``);
   the render time is also bounded by what is left of ``response_timeout``
   (a render stopped by it is a ``timeout``, 504);
5. calls the provider with the system prompt, the newest history turns that
   fit ``llm.max_prompt_size`` and the user prompt, all within
   ``response_timeout`` (else ``ConfigAgentFailure`` reason ``timeout``); a
   reply over ``llm.max_reply_size`` fails with reason ``reply_too_large``;
   an agent with ``tools`` runs the tool loop (``caxton.llm.tools.loop``)
   and its reply lists the calls (``tool_calls``); every reply lists the
   requests to the provider (``rounds``), the trace of ``caxton agents send --trace``;
6. records the turns in the conversation (the user message, each tool round's
   assistant and ``tool`` turns, the reply: the next message sends the model the
   whole exchange), and the question and reply in memory.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import jinja2
import jinja2.exceptions

from caxton import errors
from caxton.llm import conversations as conv
from caxton.llm import providers as prov
from caxton.llm import templating
from caxton.llm.tools import base as tool_base
from caxton.llm.tools import builtin, loop
from caxton.spec import agent as agent_spec
from caxton.spec.project import LLMProviders, TemplateSettings
from caxton.rules import templates

log = logging.getLogger(__name__)

MAX_CONVERSATION_ID = 200


class MemoryContext(Protocol):
    """What a config agent needs from the engine's memory (``caxton.memory.service``)."""

    def context_for(self, agent: str, scope: str, query: str, k: int, min_similarity: float) -> str: ...

    def remember(
        self, agent: str, scope: str, conversation_id: str | None, request: str, response: str
    ) -> object:
        """Record one exchange; the return value (e.g. the updated entity) is ignored."""
        ...


@dataclass(frozen=True)
class _Message:
    text: str
    conversation_id: str | None


@dataclass(frozen=True)
class _Answer:
    """What answering one message gave: the final completion and, with tools, the rest of its trace."""

    completion: prov.Completion
    calls: list[loop.CallRecord] = field(default_factory=list)
    #: The assistant turns asking for calls and the ``tool`` turns, in order (kept in the conversation).
    exchange: list[conv.Turn] = field(default_factory=list)
    #: One per request to the provider: ``{"round", "duration_ms", "tool_calls": [ids asked for]}``.
    rounds: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Templates:
    system: jinja2.Template
    user: jinja2.Template | None


class ConfigAgentRuntime:
    """Serves one revision of a config agent; safe to call from several threads."""

    def __init__(
        self,
        spec: agent_spec.ConfigAgent,
        *,
        revision: int,
        providers: prov.ProviderRegistry,
        conversations: conv.ConversationStore,
        memory: MemoryContext | None = None,
        limits: TemplateSettings | None = None,
        llm: LLMProviders | None = None,
        log_sink: loop.LogSink | None = None,
        tool_sources: tuple[tool_base.ToolSource, ...] = (builtin.BUILTIN,),
    ) -> None:
        self.spec = spec
        self._limits = limits or TemplateSettings()
        self._llm = llm or LLMProviders()
        self.revision = revision
        self._providers = providers
        self._conversations = conversations
        self._memory = memory if spec.memory.enabled else None
        self._tool_memory = memory if isinstance(memory, tool_base.ToolMemory) else None
        self._log_sink = log_sink
        self._tool_sources = tool_sources
        self._tool_loop: loop.ToolLoop | None = None
        self._templates: _Templates | None = None
        self._provider: prov.LLMProvider | None = None
        self._model = ""
        self._stopped = False
        self._lock = threading.Lock()
        self._messages = 0
        self._failures: Counter[str] = Counter()
        self._memory_errors = 0
        self._last_error: str | None = None

    # -- AgentRuntime ------------------------------------------------------------

    def start(self) -> None:
        """Compile the templates and check the provider (model, API key); raises CaxtonError."""
        provider = self._providers.get(self.spec.llm.provider)
        if provider is None:
            raise errors.InvalidInput(
                f"agent {self.spec.name!r}: the engine has no LLM provider {self.spec.llm.provider!r}",
                hint=f"use one of: {', '.join(sorted(self._providers))}",
            )
        self._model = provider.model_for(self.spec.llm)
        provider.check()
        self._templates = self._compile()
        self._tool_loop = self._build_tools()
        self._provider = provider
        if self.spec.memory.enabled and self._memory is None:
            log.warning("agent %s: memory.enabled but the engine has no memory; memory_context is ''", self.spec.id)

    def handle(self, envelope: dict[str, Any]) -> dict[str, Any]:
        templates_, provider = self._serving()
        message = self._message(envelope)
        deadline = time.monotonic() + self.spec.resource_limits.response_timeout
        try:
            created = self._open(message.conversation_id)
        except errors.TooManyConversations as exc:
            self._failed(exc, message, created=False)
            raise
        try:
            reply = self._answer(message, templates_, provider, deadline)
        except errors.CaxtonError as exc:
            self._failed(exc, message, created)
            raise
        except Exception as exc:  # a bug in a provider or memory: still a value, never a traceback
            log.exception("agent %s revision %d: unexpected failure", self.spec.id, self.revision)
            failure = errors.ConfigAgentFailure(
                f"agent {self.spec.name!r} failed unexpectedly: {type(exc).__name__}: {exc}", reason="internal"
            )
            self._failed(failure, message, created)
            raise failure from exc
        finally:
            if message.conversation_id:
                self._conversations.finish(self.spec.id, message.conversation_id)
        with self._lock:
            self._messages += 1
        return reply

    def stop(self) -> None:
        """Refuse further messages. Conversations are kept: the next revision continues them."""
        self._stopped = True

    def stats(self) -> dict[str, Any]:
        with self._lock:
            failures = dict(self._failures)
            counts = {"messages": self._messages, "memory_errors": self._memory_errors}
            last_error = self._last_error
        return {
            "kind": "config",
            "agent": self.spec.id,
            "revision": self.revision,
            "state": "stopped" if self._stopped else ("serving" if self._templates else "new"),
            "provider": self.spec.llm.provider,
            "model": self._model,
            **counts,
            "failures": sum(failures.values()),
            "failures_by_reason": failures,
            "conversations": self._conversations.count(self.spec.id),
            "max_conversations": self.spec.resource_limits.max_conversations,
            "last_error": last_error,
        }

    # -- one message ---------------------------------------------------------------

    def _answer(
        self, message: _Message, templates_: _Templates, provider: prov.LLMProvider, deadline: float
    ) -> dict[str, Any]:
        cid = message.conversation_id
        history = self._conversations.history(self.spec.id, cid) if cid else []
        variables = {
            "request": message.text,
            "parameters": self.spec.parameters,
            "memory_context": self._recall(message.text),
            "history": conv.dialogue(history),
            "conversation_id": cid or "",
            "agent": {"name": self.spec.name, "version": self.spec.version, "revision": self.revision},
        }
        system = self._render("system_prompt", templates_.system, variables, deadline)
        user = (self._render("user_prompt_template", templates_.user, variables, deadline) if templates_.user
                else message.text)
        messages = (
            prov.ChatMessage(role="system", content=system),
            *(_chat(t) for t in self._window(system, self._sendable(history), user)),
            prov.ChatMessage(role="user", content=user),
        )
        answer = self._complete(provider, messages, deadline)
        completion = answer.completion
        if time.monotonic() > deadline:
            raise self._timeout()
        self._check_reply(completion.text)
        if cid:
            turns = [conv.Turn(role="user", content=message.text), *answer.exchange,
                     conv.Turn(role="assistant", content=completion.text)]
            self._conversations.append(self.spec.id, cid, turns)
        self._remember(cid, message.text, completion.text)
        reply: dict[str, Any] = {
            "reply": completion.text, "conversation_id": cid, "provider": provider.name, "model": completion.model,
        }
        if self._tool_loop is not None:
            reply["tool_calls"] = [call.to_dict() for call in answer.calls]
        reply["rounds"] = answer.rounds
        return reply

    def _complete(self, provider: prov.LLMProvider, messages: tuple[prov.ChatMessage, ...], deadline: float
                  ) -> _Answer:
        """The model's final answer (through the tool loop when the agent has tools), the calls it made,
        the tool exchange's turns and the rounds (one per request to the provider)."""
        tools = self._tool_loop
        specs = tuple(tools.registry.function_specs()) if tools is not None else ()
        rounds: list[dict[str, Any]] = []
        last_asked = [messages]

        def ask(turns: tuple[prov.ChatMessage, ...]) -> prov.Completion:
            if time.monotonic() > deadline:
                raise self._timeout()
            started = time.perf_counter()
            completion = provider.complete(self._request(turns, deadline, specs))
            rounds.append({"round": len(rounds) + 1, "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                           "tool_calls": [call.id for call in completion.tool_calls]})
            last_asked[0] = turns
            return completion

        if tools is None:
            return _Answer(ask(messages), rounds=rounds)
        completion, calls = tools.run(ask, messages, deadline)
        exchange = [_turn(m) for m in last_asked[0][len(messages):]]  # the loop's assistant and tool messages
        return _Answer(completion, calls, exchange, rounds)

    def _build_tools(self) -> loop.ToolLoop | None:
        if not self.spec.tools:
            return None
        context = tool_base.ToolContext(
            agent=self.spec.id, memory_scope=self.spec.memory.scope, memory=self._tool_memory,
            memory_min_similarity=self.spec.memory.min_similarity, allowed_hosts=tuple(self.spec.allowed_hosts),
            mcp_servers=tuple(self.spec.mcp_servers),
        )
        registry = tool_base.build_registry(self.spec.tools, context, self._tool_sources)
        limits = self.spec.resource_limits
        return loop.ToolLoop(registry, agent=self.spec.id, max_calls=limits.tool_calls_limit,
                             call_timeout=limits.tool_timeout, sink=self._log_sink)

    def _request(self, messages: tuple[prov.ChatMessage, ...], deadline: float,
                 tools: tuple[dict[str, Any], ...] = ()) -> prov.CompletionRequest:
        return prov.CompletionRequest(
            agent=self.spec.id,
            model=self._model,
            messages=messages,
            temperature=self.spec.llm.temperature,
            max_tokens=self.spec.llm.max_tokens,
            deadline=deadline,
            max_reply_size=int(self._llm.max_reply_size),
            tools=tools,
        )

    def _sendable(self, history: list[conv.Turn]) -> list[conv.Turn]:
        """The turns a provider may be sent: without tools declared (a revision without ``tools``
        continuing a conversation of one with them) an OpenAI-compatible server may refuse tool turns."""
        if self._tool_loop is not None:
            return history
        return [turn for turn in history if not conv.in_tool_exchange(turn)]

    def _window(self, system: str, history: list[conv.Turn], user: str) -> list[conv.Turn]:
        """The newest turns of ``history`` that fit ``llm.max_prompt_size`` beside the system and user prompts.

        Starts at a user turn (a reply or a tool exchange without its question is left out too, so a
        ``tool`` turn never goes without the assistant turn that asked for it). A system and
        user prompt larger than the limit on their own fail the message (reason ``prompt_too_large``).
        """
        limit = int(self._llm.max_prompt_size)
        room = limit - conv.text_size(system) - conv.text_size(user)
        if room < 0:
            raise errors.ConfigAgentFailure(
                f"agent {self.spec.name!r}: the rendered prompt is {limit - room:,} bytes (system and user "
                f"prompts), over llm.max_prompt_size ({limit:,} bytes)",
                reason="prompt_too_large",
                hint="make the templates render less, or raise llm.max_prompt_size in caxton.yaml",
                details={"agent": self.spec.id, "revision": self.revision, "max_prompt_size": limit},
            )
        start = len(history)
        for turn in reversed(history):
            room -= conv.turn_size(turn)
            if room < 0:
                break
            start -= 1
        return conv.from_user(history[start:])

    def _check_reply(self, text: str) -> None:
        limit = int(self._llm.max_reply_size)
        size = conv.text_size(text)
        if size > limit:
            raise errors.ConfigAgentFailure(
                f"agent {self.spec.name!r}: the provider's reply is {size:,} bytes, over llm.max_reply_size "
                f"({limit:,} bytes)",
                reason="reply_too_large",
                hint="lower the agent's llm.max_tokens or ask for shorter answers in its prompt, "
                     "or raise llm.max_reply_size in caxton.yaml",
                details={"agent": self.spec.id, "revision": self.revision, "size": size, "max_reply_size": limit},
            )

    def _serving(self) -> tuple[_Templates, prov.LLMProvider]:
        if self._stopped or self._templates is None or self._provider is None:
            state = "stopped" if self._stopped else "not started"
            raise errors.Unavailable(
                f"agent {self.spec.name!r} revision {self.revision} is {state}",
                hint="the engine routes messages to the serving revision; retry",
            )
        return self._templates, self._provider

    def _message(self, envelope: dict[str, Any]) -> _Message:
        if not isinstance(envelope, dict) or "content" not in envelope:
            raise errors.InvalidInput("a message needs a 'content' field", hint='send {"content": "..."}')
        content = envelope["content"]
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        limit = self.spec.resource_limits.max_message_size
        if len(text.encode("utf-8")) > limit:
            raise errors.PayloadTooLarge(
                f"message to agent {self.spec.name!r} is larger than its max_message_size ({limit} bytes)",
                hint="send a smaller message or raise resource_limits.max_message_size in the agent file",
            )
        return _Message(text=text, conversation_id=_conversation_id(envelope.get("conversation_id")))

    def _open(self, conversation_id: str | None) -> bool:
        if conversation_id is None:
            return False
        limit = self.spec.resource_limits.max_conversations
        return self._conversations.begin(self.spec.id, conversation_id, limit=limit)

    def _failed(self, exc: errors.CaxtonError, message: _Message, created: bool) -> None:
        if created and message.conversation_id and not self._conversations.history(self.spec.id, message.conversation_id):
            self._conversations.end(self.spec.id, message.conversation_id)
        reason = getattr(exc, "reason", exc.code)
        with self._lock:
            self._failures[str(reason)] += 1
            self._last_error = exc.message

    # -- templates -----------------------------------------------------------------

    def _compile(self) -> _Templates:
        env = templating.BoundedSandbox(int(self._limits.max_output_size))
        system = self._compile_one(env, "system_prompt", self.spec.system_prompt)
        source = self.spec.user_prompt_template
        user = self._compile_one(env, "user_prompt_template", source) if source is not None else None
        return _Templates(system=system, user=user)

    def _compile_one(self, env: jinja2.Environment, field: str, source: str) -> jinja2.Template:
        try:
            return env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise errors.InvalidInput(
                f"agent {self.spec.name!r}: {field} is not a valid template (line {exc.lineno}): {exc.message}",
                hint="run `caxton validate` on the agent file",
            ) from None

    def _render(self, field: str, template: jinja2.Template, variables: dict[str, Any], deadline: float) -> str:
        """The rendered text; its time bound is ``templates.max_render_time`` or what is left of the deadline."""
        budget = float(self._limits.max_render_time)
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._timeout()
        try:
            return templating.render(template, variables, max_output=int(self._limits.max_output_size),
                                     timeout=min(budget, left))
        except templating.RenderLimit as exc:
            if isinstance(exc, templating.RenderTimedOut) and left < budget:  # stopped by response_timeout
                raise self._timeout() from None
            raise self._template_failure(field, f"went past its render limits: {exc}",
                                         "fix the template, or raise templates.max_output_size / max_render_time "
                                         "in caxton.yaml") from None
        except jinja2.exceptions.SecurityError as exc:
            raise self._template_failure(field, f"tried an operation the template sandbox forbids: {exc}") from None
        except jinja2.UndefinedError as exc:
            names = ", ".join(templates.TEMPLATE_VARIABLES)
            raise self._template_failure(field, f"uses something undefined: {exc}", f"available: {names}") from None
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise self._template_failure(field, f"failed to render: {type(exc).__name__}: {exc}") from None

    def _template_failure(self, field: str, what: str, hint: str | None = None) -> errors.ConfigAgentFailure:
        return errors.ConfigAgentFailure(
            f"agent {self.spec.name!r}: {field} {what}",
            reason="template",
            hint=hint or "fix the template in the agent file; `caxton validate` checks templates offline",
            details={"agent": self.spec.id, "revision": self.revision, "field": field},
        )

    def _timeout(self) -> errors.ConfigAgentFailure:
        limit = self.spec.resource_limits.response_timeout
        return errors.ConfigAgentFailure(
            f"agent {self.spec.name!r} did not answer within its response_timeout ({limit:g}s)",
            reason="timeout",
            hint="raise resource_limits.response_timeout in the agent file, or check the LLM provider",
            details={"agent": self.spec.id, "revision": self.revision, "response_timeout": limit},
        )

    # -- memory -------------------------------------------------------------------

    def _recall(self, query: str) -> str:
        if self._memory is None:
            return ""
        memory = self.spec.memory
        try:
            return self._memory.context_for(self.spec.id, memory.scope, query, memory.max_results, memory.min_similarity)
        except Exception as exc:
            raise errors.ConfigAgentFailure(
                f"agent {self.spec.name!r}: memory lookup failed: {exc}",
                reason="memory",
                hint="check `caxton memory` health, or set memory.enabled: false in the agent file",
            ) from exc

    def _remember(self, conversation_id: str | None, request: str, response: str) -> None:
        if self._memory is None:
            return
        try:
            self._memory.remember(self.spec.id, self.spec.memory.scope, conversation_id, request, response)
        except Exception:  # the reply is good; losing one observation must not fail it
            log.warning("agent %s: could not store the turn in memory", self.spec.id, exc_info=True)
            with self._lock:
                self._memory_errors += 1


def _conversation_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CONVERSATION_ID:
        raise errors.InvalidInput(
            "conversation_id must be a non-empty string of at most 200 characters",
            hint="omit it for a stateless message, or reuse the id of an earlier message",
        )
    return value


def _chat(turn: conv.Turn) -> prov.ChatMessage:
    message = prov.ChatMessage(role=turn["role"], content=turn["content"])
    if "tool_calls" in turn:
        message["tool_calls"] = turn["tool_calls"]
    if "tool_call_id" in turn:
        message["tool_call_id"] = turn["tool_call_id"]
    return message


def _turn(message: prov.ChatMessage) -> conv.Turn:
    if message["role"] == "tool":
        return conv.Turn(role="tool", content=message["content"], tool_call_id=message.get("tool_call_id", ""))
    turn = conv.Turn(role="assistant", content=message["content"])
    if message.get("tool_calls"):
        turn["tool_calls"] = message["tool_calls"]
    return turn
