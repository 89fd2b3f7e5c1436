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

app = typer.Typer(help="List and operate the agents running in an engine.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Agent name (any case: DataProcessor = data-processor).")]


def _client(engine: str, token: str | None) -> EngineClient:
    from caxton.client.engine import EngineClient

    return EngineClient(engine, token=token)


@app.command("list")
def list_agents(engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
                output: OutputOption = Output.text) -> int:
    """List every agent with its kind, version, state and revision."""
    with _client(engine, token) as client:
        agents = client.agents()
    if output is Output.json:
        emit_json(agents)
        return 0
    if not agents:
        echo("no agents (deploy some with `caxton apply`)")
        return 0
    rows = [[a["name"], a["kind"], a["version"], a["state"], str(a["revision"]), _traffic(a["traffic"])] for a in agents]
    _table(["NAME", "KIND", "VERSION", "STATE", "REVISION", "TRAFFIC"], rows)
    return 0


@app.command("status")
def status(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
           output: OutputOption = Output.text) -> int:
    """Show one agent: state, revisions, runtime health, recent events."""
    with _client(engine, token) as client:
        agent = client.agent(name)
    if output is Output.json:
        emit_json(agent)
        return 0
    echo(f"{agent['name']} ({agent['kind']}) {agent['version']}: {agent['state']}, revision {agent['revision']}")
    echo(f"  spec digest {agent['spec_digest']}  traffic {_traffic(agent['traffic'])}")
    for runtime in agent.get("runtime", []):
        echo("  runtime " + ", ".join(f"{k}={v}" for k, v in runtime.items() if not isinstance(v, (dict, list))))
    echo("  revisions: " + ", ".join(f"{r['number']} ({r['version']})" for r in agent.get("revisions", [])))
    for event in agent.get("events", [])[-5:]:
        echo(f"  {event['at']}  {event['what']}: {event['message']}")
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
        echo(f"{line['at']} {line['level']:<7} r{line['revision']} {line['message']}")
    return 0


def _operation(action: str, name: str, engine: str, token: str | None, output: Output) -> int:
    with _client(engine, token) as client:
        result: dict[str, Any] = getattr(client, action)(name, source={"actor": "cli"})
    if output is Output.json:
        emit_json(result)
    else:
        echo(f"{result['name']}: {result['action']} ({result['state']}, revision {result['revision']})")
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
    reply = result.get("reply")
    echo(reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False))
    return 0


def _traffic(traffic: dict[str, int]) -> str:
    return ", ".join(f"r{rev} {weight}%" for rev, weight in traffic.items()) or "-"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in [headers, *rows]:
        echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
