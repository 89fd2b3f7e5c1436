"""``caxton lock status|release``: inspect or free the engine's apply lock."""

from __future__ import annotations

from typing import Annotated

import typer

from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, Output, OutputOption, TokenOption, connect
from caxton.cli.views import render
from caxton.errors import InvalidInput

app = typer.Typer(help="Inspect or free the engine's apply lock.", no_args_is_help=True)


@app.command("status")
def status(engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
           output: OutputOption = Output.text) -> int:
    """Who holds the apply lock, why, and until when."""
    from caxton.client import lock

    with connect(engine, token) as client:
        render(lock.status(client), output)
    return 0


@app.command("release")
def release(
    force: Annotated[bool, typer.Option("--force", help="Release a lock held by someone else (its holder is gone).")] = False,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Free the apply lock (only with --force: the holder releases its own lock itself)."""
    from caxton.client import lock

    if not force:
        raise InvalidInput("releasing the apply lock needs --force",
                           hint="an apply in progress releases its own lock; use --force only when its holder is gone")
    with connect(engine, token) as client:
        render(lock.release(client, None, force=True), output)
    return 0
