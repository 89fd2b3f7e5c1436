"""``caxton agents list|status|logs|suspend|resume|remove|send``: operate agents on an engine.

Each command: parse options, one call through ``caxton.client.engine``,
render text or JSON, return 0. Errors (unreachable engine, unknown agent,
illegal transition) are raised as ``CaxtonError`` and mapped to exit 1 by
``caxton.cli.main``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from caxton.cli import sync_view
from caxton.cli.common import (
    DEFAULT_ENGINE_URL,
    EngineOption,
    Output,
    OutputOption,
    TokenOption,
    echo,
    emit_json,
)

if TYPE_CHECKING:
    from caxton.client.engine import EngineClient
    from caxton.spec import api
    from caxton.spec.state import StateSnapshot

app = typer.Typer(help="List and operate the agents running in an engine.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Agent name (any case: DataProcessor = data-processor).")]


def _client(engine: str, token: str | None) -> EngineClient:
    from caxton.client.engine import EngineClient

    return EngineClient(engine, token=token)


@app.command("list")
def list_agents(engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
                output: OutputOption = Output.text) -> int:
    """List every agent with its kind, version, state, revision, and SYNC/HEALTH.

    HEALTH is read from the engine now; SYNC (against the desired state) comes from the reconcile loop
    that reports to this engine, and is `-` when none is running.
    """
    from caxton.reconcile import board
    from caxton.spec.api import wire

    with _client(engine, token) as client:
        found = client.agents()
        snapshot = client.state()
        view = board.read(client)
    agents = add_health(found, snapshot, wire(view), engine)
    if output is Output.json:
        emit_json(agents)
        return 0
    if not agents:
        echo("no agents (deploy some with `caxton apply`)")
        return 0
    for line in sync_view.agents_lines(agents):
        echo(line)
    return 0


def add_health(agents: list[api.AgentSummary], snapshot: StateSnapshot, view: dict[str, Any],
               engine: str) -> list[dict[str, Any]]:
    """The agents' rows with ``sync``, ``health`` and ``health_reason``: health from ``snapshot`` (now), sync
    from the live reconcile loop's report in ``view`` (the board's JSON; ``-`` without one), which also knows
    the held (rolled-back) versions."""
    from caxton.reconcile import health
    from caxton.spec.api import wire

    live = {row.id: row for row in health.derive(snapshot, None)}
    reported = sync_view.sync_by_agent(view, engine) or {}
    rows: list[dict[str, Any]] = []
    for agent in agents:
        row, loop = live.get(agent.id), reported.get(agent.id, {})
        sync, state, reason = loop.get("sync", "-"), row.health if row else "-", row.reason if row else ""
        if loop.get("health") == health.DEGRADED and state == health.HEALTHY:
            state, reason = health.DEGRADED, str(loop.get("reason") or "")
        rows.append({**wire(agent), "sync": sync, "health": state, "health_reason": reason})
    return rows


@app.command("status")
def status(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
           output: OutputOption = Output.text) -> int:
    """Show one agent: state, revisions, runtime health, recent events."""
    from caxton.spec.api import wire

    with _client(engine, token) as client:
        agent = client.agent(name)
    if output is Output.json:
        emit_json(agent)
        return 0
    echo(f"{agent.name} ({agent.kind}) {agent.version}: {agent.state}, revision {agent.revision}")
    echo(f"  spec digest {agent.spec_digest}  traffic {sync_view.traffic(agent.traffic)}")
    for runtime in agent.runtime:
        fields = wire(runtime).items()
        echo("  runtime " + ", ".join(f"{k}={v}" for k, v in fields if not isinstance(v, (dict, list))))
    echo("  revisions: " + ", ".join(f"{r.number} ({r.version})" for r in agent.revisions))
    for event in agent.events[-5:]:
        echo(f"  {event.at}  {event.what}: {event.message}")
    return 0


@app.command("logs")
def logs(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
         output: OutputOption = Output.text,
         limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Lines to show.")] = 100) -> int:
    """Show an agent's recent log lines."""
    with _client(engine, token) as client:
        lines = client.logs(name, limit)
    if output is Output.json:
        emit_json(lines)
        return 0
    for line in lines:
        echo(f"{line.at} {line.level:<7} r{line.revision} {line.message}")
    return 0


def _operation(action: str, name: str, engine: str, token: str | None, output: Output) -> int:
    from caxton.spec.api import OperationResult, SourceRequest

    with _client(engine, token) as client:
        result: OperationResult = getattr(client, action)(name, source=SourceRequest(actor="cli"))
    if output is Output.json:
        emit_json(result)
    else:
        echo(f"{result.name}: {result.action} ({result.state}, revision {result.revision})")
    return 0


@app.command("suspend")
def suspend(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
            output: OutputOption = Output.text) -> int:
    """Stop an agent taking messages (in-flight ones finish); `resume` brings it back."""
    return _operation("suspend", name, engine, token, output)


@app.command("resume")
def resume(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
           output: OutputOption = Output.text) -> int:
    """Resume a suspended agent at its current revision."""
    return _operation("resume", name, engine, token, output)


@app.command("remove")
def remove(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
           output: OutputOption = Output.text) -> int:
    """Remove an agent from the engine (drains it first). Git still holds its file: apply would re-create it."""
    return _operation("remove", name, engine, token, output)


@app.command("send")
def send(
    name: NameArgument,
    message: Annotated[str, typer.Argument(help="The message: text, or JSON with --json.")],
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
    conversation: Annotated[str | None, typer.Option("--conversation", help="Conversation id to continue.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Parse MESSAGE as JSON.")] = False,
) -> int:
    """Send one message to an agent and print its reply."""
    content: Any = message
    if as_json:
        try:
            content = json.loads(message)
        except json.JSONDecodeError as error:
            from caxton.errors import InvalidInput

            raise InvalidInput(f"MESSAGE is not valid JSON: {error}", hint="quote it, or drop --json") from None
    with _client(engine, token) as client:
        result = client.send(name, content, conversation_id=conversation)
    if output is Output.json:
        emit_json(result)
        return 0
    reply = result.reply
    echo(reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False))
    return 0


