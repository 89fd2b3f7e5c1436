"""Views of ``caxton agents``: the list (with SYNC/HEALTH), one agent, its logs, operations, replies and
their traces (model rounds and tool calls)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caxton.cli.views.registry import Note, Shown, text_view
from caxton.cli.views.text import table, traffic

if TYPE_CHECKING:
    from caxton.spec import api
    from caxton.spec.state import StateSnapshot


@dataclass(frozen=True)
class Listed(Shown):
    """``agents list``: each agent's wire row with ``sync``, ``health`` and ``health_reason``."""

    result: list[dict[str, Any]]


@dataclass(frozen=True)
class Traced(Shown):
    """``agents send --trace``: the reply (its JSON as without ``--trace``), and its trace when a config agent's."""

    result: api.MessageReply
    trace: api.ConfigAgentReply | None


@dataclass(frozen=True)
class Logs(Shown):
    """An agent's log lines."""

    result: list[api.LogLine]


def add_health(agents: list[api.AgentSummary], snapshot: StateSnapshot, view: dict[str, Any],
               engine: str) -> list[dict[str, Any]]:
    """The agents' rows with ``sync``, ``health`` and ``health_reason``: health from ``snapshot`` (now), sync
    from the live reconcile loop's report in ``view`` (the board's JSON; ``-`` without one), which also knows
    the held (rolled-back) versions."""
    from caxton.cli.views.reconcile import sync_by_agent
    from caxton.reconcile import health
    from caxton.spec.api import wire

    live = {row.id: row for row in health.derive(snapshot, None)}
    reported = sync_by_agent(view, engine) or {}
    rows: list[dict[str, Any]] = []
    for agent in agents:
        row, loop = live.get(agent.id), reported.get(agent.id, {})
        sync, state, reason = loop.get("sync", "-"), row.health if row else "-", row.reason if row else ""
        if loop.get("health") == health.DEGRADED and state == health.HEALTHY:
            state, reason = health.DEGRADED, str(loop.get("reason") or "")
        rows.append({**wire(agent), "sync": sync, "health": state, "health_reason": reason})
    return rows


@text_view("Listed")
def listed_text(listed: Listed) -> list[str]:
    if not listed.result:
        return ["no agents (deploy some with `caxton apply`)"]
    return agents_lines(listed.result)


def agents_lines(agents: list[dict[str, Any]]) -> list[str]:
    """``caxton agents list``: kind, version, state, revision, traffic, then SYNC, HEALTH and the reason."""
    rows = [[a["name"], a["kind"], a["version"], a["state"], str(a["revision"]), traffic(a["traffic"]),
             a["sync"], a["health"], a["health_reason"]] for a in agents]
    return table(["NAME", "KIND", "VERSION", "STATE", "REVISION", "TRAFFIC", "SYNC", "HEALTH", "REASON"], rows)


@text_view("AgentDetail")
def agent_text(agent: api.AgentDetail) -> Iterator[str]:
    from caxton.spec.api import wire

    yield f"{agent.name} ({agent.kind}) {agent.version}: {agent.state}, revision {agent.revision}"
    yield f"  spec digest {agent.spec_digest}  traffic {traffic(agent.traffic)}"
    for runtime in agent.runtime:
        fields = wire(runtime).items()
        yield "  runtime " + ", ".join(f"{k}={v}" for k, v in fields if not isinstance(v, (dict, list)))
    yield "  revisions: " + ", ".join(f"{r.number} ({r.version})" for r in agent.revisions)
    for event in agent.events[-5:]:
        yield f"  {event.at}  {event.what}: {event.message}"


@text_view("Logs")
def logs_text(logs: Logs) -> list[str]:
    return [f"{line.at} {line.level:<7} r{line.revision} {line.message}" for line in logs.result]


@text_view("OperationResult")
def operation_text(result: api.OperationResult) -> list[str]:
    return [f"{result.name}: {result.action} ({result.state}, revision {result.revision})"]


@text_view("MessageReply")
def reply_text(result: api.MessageReply) -> list[str]:
    reply = result.reply
    return [reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)]


#: Characters of a tool call's arguments, and of its result, in a trace.
TRACE_ARGUMENTS = 120
TRACE_RESULT = 200


@text_view("Traced")
def traced_text(traced: Traced) -> Iterator[str]:
    """A config agent's answer, then its trace: each model round with the tool calls it asked for (arguments,
    outcome, duration, result excerpt); another agent's reply as without ``--trace``."""
    trace = traced.trace
    if trace is None:
        yield from reply_text(traced.result)
        yield Note(f"no trace: {traced.result.agent} is not a config agent (its reply is its module's)")
        return
    yield trace.reply
    rounds, calls = trace.rounds or [], list(trace.tool_calls or [])
    model_ms = sum(r.duration_ms for r in rounds)
    yield (f"--- trace: {trace.provider} {trace.model}, {_count(len(rounds), 'model round')} ({model_ms:.1f} ms), "
           f"{_count(len(calls), 'tool call')}; {traced.result.duration_ms:.1f} ms in all")
    for model_round in rounds:
        asked = len(model_round.tool_calls)
        yield (f"round {model_round.round}: {model_round.duration_ms:.1f} ms, "
               + (f"asked for {_count(asked, 'tool call')}" if asked else "answered"))
        for call in calls[:asked]:
            yield from _call_lines(call)
        del calls[:asked]
    for call in calls:  # an engine that sent calls but no rounds
        yield from _call_lines(call)


def _call_lines(call: api.ToolCallRecord) -> Iterator[str]:
    yield f"  {call.id} {call.tool} {_excerpt(call.arguments, TRACE_ARGUMENTS)}: {call.outcome} in {call.duration_ms:.1f} ms"
    result = call.result
    error = result.get("error") if isinstance(result, dict) and call.outcome != "ok" else None
    if isinstance(error, dict):
        yield f"    error: {_excerpt(error.get('message', ''), TRACE_RESULT)}"
    else:
        yield f"    -> {_excerpt(result, TRACE_RESULT)}"


def _excerpt(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
