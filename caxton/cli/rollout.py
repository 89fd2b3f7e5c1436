"""``caxton rollout status [AGENT] [--watch] | promote AGENT | abort AGENT``.

The engine runs every rollout (canary, gradual, blue-green, ab-test,
shadow); these commands read its progress (step, traffic, each measurement
with its threshold and verdict) or end it early. ``status --watch AGENT``
follows until the rollout finishes and exits 3 when it rolled back.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, NameArgument, Output, OutputOption, TokenOption, connect
from caxton.cli.views import render, rendered
from caxton.errors import RolledBack

if TYPE_CHECKING:
    from caxton.spec.api import RolloutView

app = typer.Typer(help="Follow, promote or abort the engine's rollouts.", no_args_is_help=True)


@app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="Agent name (default: every agent).", show_default=False)] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until the rollouts shown have finished.")] = False,
    every: Annotated[float, typer.Option("--every", help="Seconds between refreshes with --watch.")] = 1.0,
    limit: Annotated[int, typer.Option("--limit", help="How many rollouts to show.")] = 5,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Show rollouts: strategy, step, traffic, live windows and every measurement (value, threshold, verdict)."""
    from caxton.cli.views.rollouts import Rollouts
    from caxton.client import rollouts

    shown = ""
    with connect(engine, token) as client:
        while True:
            found = rollouts.status(client, name, limit=limit)
            text = rendered(Rollouts(found), output)
            if text != shown:
                sys.stdout.write(text)
                sys.stdout.flush()
                shown = text
            if not watch or not _active(found, name):
                break
            time.sleep(max(every, 0.1))
    if watch and name and found and found[0].status == "rolled_back":
        raise RolledBack(f"rollout {found[0].id} of {found[0].name} rolled back: {found[0].reason}")
    return 0


def _active(found: list[RolloutView], name: str | None) -> bool:
    """Whether a watch goes on: the agent's newest rollout (or any rollout) is still active."""
    from caxton.spec.api import ROLLOUT_ACTIVE as ACTIVE

    if name:
        return bool(found) and found[0].status in ACTIVE
    return any(r.status in ACTIVE for r in found)


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
