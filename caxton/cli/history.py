"""``caxton history AGENT`` and ``caxton rollback AGENT``: kept revisions, and going back to one."""

from __future__ import annotations

from typing import Annotated

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

NameArgument = Annotated[str, typer.Argument(help="Agent name (any case).")]


def history(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
            output: OutputOption = Output.text) -> int:
    """List an agent's kept revisions: version, digest, git commit, applied at, outcome."""
    from caxton.client import plans
    from caxton.client.engine import EngineClient

    with EngineClient(engine, token=token) as client:
        result = plans.history(client, name)
    if output is Output.json:
        emit_json(result)
        return 0
    echo(f"{result.name} ({result.state}, serving revision {result.serving})")
    header = ("REVISION", "VERSION", "DIGEST", "COMMIT", "APPLIED AT", "OUTCOME")
    rows = [(str(r.revision), r.version, r.digest.removeprefix("sha256:")[:12],
             (r.git_commit or "-")[:12], r.applied_at[:19].replace("T", " "), r.outcome)
            for r in result.revisions]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in [header, *rows]:
        echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def rollback(
    name: NameArgument,
    to_version: Annotated[str | None, typer.Option("--to-version", help="Go back to the newest kept revision of this version.")] = None,
    to_revision: Annotated[int | None, typer.Option("--to-revision", help="Go back to this revision number.")] = None,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Re-apply a kept revision (default: the one before the serving one)."""
    from caxton.client import plans
    from caxton.client.engine import EngineClient

    with EngineClient(engine, token=token) as client:
        result = plans.rollback(client, name, to_version=to_version, to_revision=to_revision)
    if output is Output.json:
        emit_json(result)
    else:
        echo(f"{result.name}: revision {result.revision} serving ({result.state}); "
             "the next plan from git shows this as drift")
    return 0
