"""``caxton agents list|status|logs|suspend|resume|remove|send``: operate agents on an engine.

Each command: parse options, one call through ``caxton.client`` (``agents``, ``status``),
render text or JSON, return 0. Errors (unreachable engine, unknown agent,
illegal transition) are raised as ``CaxtonError`` and mapped to exit 1 by
``caxton.cli.main``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, Output, OutputOption, TokenOption, connect
from caxton.cli.views import render

app = typer.Typer(help="List and operate the agents running in an engine.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Agent name (any case: DataProcessor = data-processor).")]


@app.command("list")
def list_agents(engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
                output: OutputOption = Output.text) -> int:
    """List every agent with its kind, version, state, revision, and SYNC/HEALTH.

    HEALTH is read from the engine now; SYNC (against the desired state) comes from the reconcile loop
    that reports to this engine, and is `-` when none is running.
    """
    from caxton.cli.views.agents import Listed, add_health
    from caxton.client import agents, reconcile, status
    from caxton.spec.api import wire

    with connect(engine, token) as client:
        found = agents.summaries(client)
        snapshot = status.state(client)
        view = reconcile.read(client)
    render(Listed(add_health(found, snapshot, wire(view), engine)), output)
    return 0


@app.command("status")
def status(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
           output: OutputOption = Output.text) -> int:
    """Show one agent: state, revisions, runtime health, recent events."""
    from caxton.client import agents

    with connect(engine, token) as client:
        render(agents.get(client, name), output)
    return 0


@app.command("logs")
def logs(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
         output: OutputOption = Output.text,
         limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Lines to show.")] = 100) -> int:
    """Show an agent's recent log lines."""
    from caxton.cli.views.agents import Logs
    from caxton.client import agents

    with connect(engine, token) as client:
        render(Logs(agents.logs(client, name, limit)), output)
    return 0


def _operation(action: str, name: str, engine: str, token: str | None, output: Output) -> int:
    from caxton.client import agents
    from caxton.spec.api import SourceRequest

    calls = {"suspend": agents.suspend, "resume": agents.resume, "remove": agents.remove}
    with connect(engine, token) as client:
        result = calls[action](client, name, source=SourceRequest(actor="cli"))
    render(result, output)
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
    trace: Annotated[bool, typer.Option("--trace", help="Also print the reply's trace: each model round and tool "
                                        "call (arguments, outcome, duration, result excerpt).")] = False,
) -> int:
    """Send one message to an agent and print its reply (with --trace, how a config agent got to it).

    With --output json the reply is printed whole, --trace or not: a config agent's carries its
    tool_calls and rounds.
    """
    content: Any = message
    if as_json:
        try:
            content = json.loads(message)
        except json.JSONDecodeError as error:
            from caxton.errors import InvalidInput

            raise InvalidInput(f"MESSAGE is not valid JSON: {error}", hint="quote it, or drop --json") from None
    from caxton.client import agents

    with connect(engine, token) as client:
        reply = agents.send(client, name, content, conversation_id=conversation)
    if trace:
        from caxton.cli.views.agents import Traced

        render(Traced(reply, agents.config_reply(reply)), output)
    else:
        render(reply, output)
    return 0


