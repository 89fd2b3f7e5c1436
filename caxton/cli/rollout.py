"""``caxton rollout status [AGENT] [--watch] | promote AGENT | abort AGENT``.

The engine runs every rollout (canary, gradual, blue-green, ab-test,
shadow); these commands read its progress (step, traffic, each measurement
with its threshold and verdict) or end it early. ``status --watch AGENT``
follows the engine's event stream until the rollout finishes (redrawn in
place on a terminal, one line or JSON line per change elsewhere) and exits
3 when it rolled back.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli.common import (
    DEFAULT_ENGINE_URL,
    EngineOption,
    NameArgument,
    Output,
    OutputOption,
    TokenOption,
    connect,
    echo,
)
from caxton.cli.views import emit_event, render, rendered
from caxton.errors import RolledBack

if TYPE_CHECKING:
    from caxton.client.rollouts import Watched
    from caxton.spec.api import RolloutView

app = typer.Typer(help="Follow, promote or abort the engine's rollouts.", no_args_is_help=True)


@app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="Agent name (default: every agent).", show_default=False)] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow the engine's event stream until the rollouts "
                                        "shown have finished: redrawn in place on a terminal, else one line (JSON "
                                        "with -o json) per change.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many rollouts to show.")] = 5,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Show rollouts: strategy, step, traffic, live windows and every measurement (value, threshold, verdict)."""
    from caxton.cli.views.rollouts import Rollouts
    from caxton.client import rollouts

    with connect(engine, token) as client:
        if watch:
            found = _watch(rollouts.watch(client, name, limit=limit), output)
        else:
            found = rollouts.status(client, name, limit=limit)
            render(Rollouts(found), output)
    if watch and name and found and found[0].status == "rolled_back":
        raise RolledBack(f"rollout {found[0].id} of {found[0].name} rolled back: {found[0].reason}")
    return 0


def _watch(changes: Iterator[Watched], output: Output) -> list[RolloutView]:
    """Show each change of a watch (in place on a terminal, else a line or a JSON line); the rollouts at its end."""
    from caxton.cli.progress import live_wanted
    from caxton.cli.views.rollouts import Rollouts, change_line
    from caxton.spec.api import RolloutProgress, wire

    found: list[RolloutView] = []
    if output is Output.text and live_wanted():
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        with Live(console=Console(), refresh_per_second=10, transient=False) as live:
            for seen in changes:
                found = seen.rollouts
                live.update(Text(rendered(Rollouts(found), output).rstrip("\n")), refresh=True)
        return found
    for seen in changes:
        found = seen.rollouts
        if output is Output.json:
            if seen.change is None:
                emit_event("rollouts", rollouts=[wire(rollout) for rollout in found])
            else:
                emit_event("rollout" if isinstance(seen.change, RolloutProgress) else "event", **wire(seen.change))
        elif seen.change is None:
            render(Rollouts(found), output)
        else:
            echo(change_line(seen.change))
        sys.stdout.flush()
    return found


@app.command("promote")
def promote(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
            output: OutputOption = Output.text) -> int:
    """Skip the remaining steps: all traffic to the new revision now; the old one is drained and stopped."""
    from caxton.client import rollouts

    with connect(engine, token) as client:
        result = rollouts.promote(client, name)
    render(result, output)
    return 0


@app.command("abort")
def abort(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
          output: OutputOption = Output.text) -> int:
    """Roll back now: all traffic to the stable revision; the new one is drained and stopped."""
    from caxton.client import rollouts

    with connect(engine, token) as client:
        result = rollouts.abort(client, name)
    render(result, output)
    return 0
