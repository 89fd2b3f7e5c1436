"""The tool loop of one config-agent message (docs/tools.md).

Ask the model (with the agent's tools declared); while it answers with tool calls,
run them (in parallel when it asks for several, each within ``tool_call_timeout``
and what is left of ``response_timeout``), hand each result back as a ``role: tool``
message, and ask again; its first answer without calls is the reply. A failing call
(bad arguments, an unlisted tool, the tool's own error, a timeout) is a result
``{"error": {...}}`` the model sees, never a failed message. Past ``max_tool_calls``
calls are refused (reason ``max_tool_calls``); a model that asks again after that
fails the message (``ConfigAgentFailure`` reason ``tool_loop``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from caxton import errors, metrics
from caxton.llm import providers as prov
from caxton.llm.tools.base import JsonValue, ToolRegistry
from caxton.spec import secrets

log = logging.getLogger(__name__)

#: The ``tool`` label of a call to a tool the agent does not list (the model's name is not a label).
UNLISTED = "(unlisted)"
#: Bytes of one tool result (JSON) handed back to the model; past it the call fails ``too_large``.
MAX_RESULT_SIZE = 256 * 1024
#: Characters of a call's arguments, and of its error message, in its agent-log line.
MAX_LOGGED_ARGUMENTS = 200
MAX_LOGGED_ERROR = 300
Ask = Callable[[tuple[prov.ChatMessage, ...]], prov.Completion]
LogSink = Callable[[str, str], None]


@dataclass(frozen=True)
class CallRecord:
    """One tool call of a message, as the reply's ``tool_calls`` shows it."""

    id: str
    tool: str
    arguments: JsonValue
    outcome: str
    result: JsonValue
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tool": self.tool, "arguments": self.arguments, "outcome": self.outcome,
                "result": self.result, "duration_ms": self.duration_ms}


class ToolLoop:
    """Runs the tool loop for one agent revision; thread-safe (no state between messages)."""

    def __init__(self, registry: ToolRegistry, *, agent: str, max_calls: int, call_timeout: float,
                 max_result_size: int = MAX_RESULT_SIZE, sink: LogSink | None = None) -> None:
        import jsonschema

        self.registry = registry
        self._agent = agent
        self._max_calls = max_calls
        self._call_timeout = call_timeout
        self._max_result_size = max_result_size
        self._sink = sink
        self._validators = {
            name: jsonschema.validators.validator_for(tool.parameters)(tool.parameters)
            for name in registry.names() if (tool := registry.get(name)) is not None
        }

    def run(self, ask: Ask, messages: tuple[prov.ChatMessage, ...], deadline: float
            ) -> tuple[prov.Completion, list[CallRecord]]:
        records: list[CallRecord] = []
        refused = False
        while True:
            completion = ask(messages)
            if not completion.tool_calls:
                return completion, records
            if refused:
                raise errors.ConfigAgentFailure(
                    f"agent {self._agent!r}: the model still asked for tools after max_tool_calls "
                    f"({self._max_calls}) calls",
                    reason="tool_loop",
                    hint="raise resource_limits.max_tool_calls in the agent file, or tell the model in its prompt "
                         "to answer with what it has",
                    details={"agent": self._agent, "max_tool_calls": self._max_calls, "tool_calls": len(records)},
                )
            room = self._max_calls - len(records)
            now_calls, over = completion.tool_calls[:room], completion.tool_calls[room:]
            done = self._run_all(now_calls, deadline) + [self._over_limit(call) for call in over]
            refused = bool(over)
            records.extend(done)
            messages = (
                *messages,
                prov.ChatMessage(role="assistant", content=completion.text,
                                 tool_calls=[c.as_message_part() for c in completion.tool_calls]),
                *(prov.ChatMessage(role="tool", tool_call_id=r.id, content=_content(r.result)) for r in done),
            )

    # -- calls ----------------------------------------------------------------------------------------

    def _run_all(self, calls: tuple[prov.ToolCall, ...], deadline: float) -> list[CallRecord]:
        if not calls:
            return []
        timeout = max(0.0, min(self._call_timeout, deadline - time.monotonic()))
        call_deadline = time.monotonic() + timeout
        pool = ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix=f"tool-{self._agent}")
        try:
            started = time.perf_counter()
            abandoned = [threading.Event() for _ in calls]
            futures = [pool.submit(self._call, call, call_deadline, gone) for call, gone in zip(calls, abandoned)]
            records = []
            for call, future, gone in zip(calls, futures, abandoned):
                try:
                    records.append(future.result(timeout=max(0.0, call_deadline - time.monotonic())))
                except FutureTimeout:
                    gone.set()  # the call's own record, when it ends, is not counted again
                    failure = errors.ToolFailure(f"tool {call.name!r} did not answer within {timeout:g}s",
                                                 reason="timeout",
                                                 hint="raise resource_limits.tool_call_timeout in the agent file")
                    records.append(self._record(call, _arguments_or_text(call.arguments), failure, started))
            return records
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, call: prov.ToolCall, deadline: float, abandoned: threading.Event) -> CallRecord:
        started = time.perf_counter()
        metrics.TOOL_CALLS_ACTIVE.inc()
        try:
            arguments = _arguments_or_text(call.arguments)
            try:
                result: JsonValue = self._invoke(call, arguments, deadline)
            except errors.ToolFailure as failure:
                result = failure
            except Exception as exc:  # the tool's bug: a result the model sees, and a log line with the traceback
                log.exception("agent %s: tool %s failed", self._agent, call.name)
                result = errors.ToolFailure(f"tool {call.name!r} failed: {type(exc).__name__}: {exc}")
            return self._record(call, arguments, result, started, counted=not abandoned.is_set())
        finally:
            metrics.TOOL_CALLS_ACTIVE.dec()

    def _invoke(self, call: prov.ToolCall, arguments: JsonValue, deadline: float) -> JsonValue:
        tool = self.registry.get(call.name)
        if tool is None:
            raise errors.ToolFailure(
                f"tool {call.name!r} is not one of this agent's tools", reason="not_allowed",
                hint=f"its tools are: {', '.join(self.registry.names()) or 'none'}")
        if not isinstance(arguments, dict):
            raise errors.ToolFailure(f"the arguments of {call.name!r} must be a JSON object, not {call.arguments!r}",
                                     reason="invalid_arguments")
        problems = sorted(self._validators[call.name].iter_errors(arguments), key=lambda e: list(e.path))
        if problems:
            said = "; ".join(f"{'/'.join(str(p) for p in e.absolute_path) or '(arguments)'}: {e.message}"
                             for e in problems[:3])
            raise errors.ToolFailure(f"invalid arguments for {call.name!r}: {said}", reason="invalid_arguments",
                                     hint="the tool's parameters schema says what it takes")
        result = tool.call(arguments, deadline)
        if time.monotonic() > deadline:
            raise errors.ToolFailure(f"tool {call.name!r} ran past its deadline", reason="timeout")
        size = len(_content(result).encode("utf-8"))
        if size > self._max_result_size:
            raise errors.ToolFailure(f"the result of {call.name!r} is {size:,} bytes, over {self._max_result_size:,}",
                                     reason="too_large")
        return result

    def _over_limit(self, call: prov.ToolCall) -> CallRecord:
        failure = errors.ToolFailure(
            f"refused: this message already made max_tool_calls ({self._max_calls}) tool calls",
            reason="max_tool_calls", hint="answer with what you have")
        return self._record(call, _arguments_or_text(call.arguments), failure, time.perf_counter())

    def _record(self, call: prov.ToolCall, arguments: JsonValue, result: JsonValue, started: float, *,
                counted: bool = True) -> CallRecord:
        """The call's record; ``counted``: also its metrics and log line (once per call)."""
        elapsed = time.perf_counter() - started
        label = call.name if call.name in self.registry else UNLISTED
        if isinstance(result, errors.ToolFailure):
            outcome = result.reason
            shown: JsonValue = {"error": {"reason": result.reason, "message": result.message,
                                          **({"hint": result.hint} if result.hint else {})}}
        else:
            outcome, shown = "ok", result
        if not counted:
            return CallRecord(call.id, call.name, arguments, outcome, shown, round(elapsed * 1000, 3))
        metrics.TOOL_CALLS.labels(self._agent, label, outcome).inc()
        metrics.TOOL_CALL_DURATION.labels(self._agent, label).observe(elapsed)
        if self._sink is not None:
            self._sink(*_log_line(call, arguments, outcome, shown, elapsed))
        return CallRecord(call.id, call.name, arguments, outcome, shown, round(elapsed * 1000, 3))


def _log_line(call: prov.ToolCall, arguments: JsonValue, outcome: str, shown: JsonValue,
              elapsed: float) -> tuple[str, str]:
    """The agent-log level and line of a call: id, tool, outcome, duration, the error's message and the
    arguments, both cut short and with anything that looks like a secret redacted (``caxton.spec.secrets``)."""
    line = f"tool call {call.id} {call.name}: {outcome} in {elapsed * 1000:.1f} ms"
    if outcome != "ok" and isinstance(shown, dict) and isinstance(error := shown.get("error"), dict):
        line += f": {secrets.excerpt(str(error.get('message', '')), MAX_LOGGED_ERROR)}"
    line += f"; arguments {secrets.excerpt(arguments, MAX_LOGGED_ARGUMENTS)}"
    return ("info" if outcome == "ok" else "warning"), line


def _arguments_or_text(raw: str) -> JsonValue:
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        return raw


def _content(result: JsonValue) -> str:
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str)
