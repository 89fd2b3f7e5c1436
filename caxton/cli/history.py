"""``caxton history AGENT`` and ``caxton rollback AGENT``: kept revisions, and going back to one."""

from __future__ import annotations

from typing import Annotated

import typer

from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, NameArgument, Output, OutputOption, TokenOption, connect
from caxton.cli.views import render


def history(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
            output: OutputOption = Output.text) -> int:
    """List an agent's kept revisions: version, digest, git commit, applied at, outcome."""
    from caxton.client import agents

    with connect(engine, token) as client:
        render(agents.history(client, name), output)
    return 0


def rollback(
    name: NameArgument,
    to_version: Annotated[str | None, typer.Option("--to-version", help="Go back to the newest kept revision of this version.")] = None,
    to_revision: Annotated[int | None, typer.Option("--to-revision", help="Go back to this revision number.")] = None,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Re-apply a kept revision (default: the one before the serving one)."""
    from caxton.cli.views.revisions import Reverted
    from caxton.client import agents

    with connect(engine, token) as client:
        result = agents.rollback(client, name, to_version=to_version, to_revision=to_revision)
    render(Reverted(result), output)
    return 0
