"""``caxton memory stats|search|add|export|import|vacuum|reindex``: the engine's vector memory.

Each command: parse options, call ``caxton.client.memory``, render text or
JSON, return 0. Errors (unreachable engine, memory disabled, 413, conflicts)
are ``CaxtonError`` values mapped to exit 1 by ``caxton.cli.main``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, Output, OutputOption, TokenOption, connect, note
from caxton.cli.views import render

app = typer.Typer(help="Inspect and manage the engine's vector memory.", no_args_is_help=True)

MergeOption = Annotated[
    str, typer.Option("--merge", help="What an existing name does: update, skip or error.", show_default=True)
]


@app.command("stats")
def stats(
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text
) -> int:
    """Entity/relation counts, database size, index mode and model health."""
    from caxton.client import memory

    with connect(engine, token) as client:
        result = memory.stats(client)
        result.health = memory.health(client)
    render(result, output)
    return 0


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Text to search for (semantic).")],
    k: Annotated[int, typer.Option("-k", "--limit", help="How many results (1-100).")] = 10,
    min_similarity: Annotated[float | None, typer.Option(help="Drop results below this similarity.")] = None,
    entity_type: Annotated[list[str] | None, typer.Option("--type", help="Only this entity type (repeatable).")] = None,
    scope: Annotated[list[str] | None, typer.Option("--scope", help="agent, workspace or global (repeatable).")] = None,
    agent: Annotated[str | None, typer.Option(help="Search as this agent (hides other agents' entities).")] = None,
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
    output: OutputOption = Output.text,
) -> int:
    """Semantic search: entities ranked by similarity (1.0 = same meaning)."""
    from caxton.client import memory

    with connect(engine, token) as client:
        result = memory.search(
            client, query, k=k, min_similarity=min_similarity, types=entity_type, scopes=scope, agent=agent
        )
    render(result, output)
    return 0


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Entity name (unique per scope).")],
    entity_type: Annotated[str, typer.Option("--type", help="Entity type, e.g. person, fact, ticket.")],
    observation: Annotated[
        list[str] | None, typer.Option("--observation", "-O", help="An observation (repeatable).")
    ] = None,
    scope: Annotated[str, typer.Option(help="agent, workspace or global.")] = "workspace",
    owner: Annotated[str | None, typer.Option(help="Owning agent (required for scope agent).")] = None,
    merge: MergeOption = "error",
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
    output: OutputOption = Output.text,
) -> int:
    """Store one entity with its observations (embedded by the engine)."""
    from caxton.client import memory
    from caxton.client.transport import build
    from caxton.spec.api import EntityRequest

    entity = build(EntityRequest, name=name, entity_type=entity_type, observations=list(observation or []),
                   scope=scope, owner=owner)
    with connect(engine, token) as client:
        (stored,) = memory.add(client, [entity], merge=merge).entities
    render(stored, output)
    return 0


@app.command("export")
def export(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")] = None,
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
) -> int:
    """Write every entity and relation as JSON lines (the input of `caxton memory import`)."""
    from caxton.client import memory

    with connect(engine, token, timeout=300.0) as client:
        text = memory.export(client)
    lines = text.count("\n")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        note(f"exported {max(0, lines - 1)} records to {out}")
    return 0


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="JSON lines file from `caxton memory export`, or - for stdin.")],
    merge: MergeOption = "update",
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
    output: OutputOption = Output.text,
) -> int:
    """Merge an export into the engine's memory (re-embeds every entity)."""
    from caxton import errors
    from caxton.client import memory

    if source == "-":
        lines = sys.stdin.read().splitlines()
    else:
        path = Path(source)
        if not path.is_file():
            raise errors.InvalidInput(f"{source}: no such file", hint="give the path of a `caxton memory export`")
        lines = path.read_text(encoding="utf-8").splitlines()
    with connect(engine, token, timeout=600.0) as client:
        report = memory.import_lines(client, lines, merge=merge)
    render(report, output)
    return 0


@app.command("vacuum")
def vacuum(
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text
) -> int:
    """Compact the memory database (SQLite VACUUM after a WAL checkpoint)."""
    from caxton.client import memory

    with connect(engine, token, timeout=600.0) as client:
        render(memory.vacuum(client), output)
    return 0


@app.command("reindex")
def reindex(
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text
) -> int:
    """Re-embed every entity with the engine's current model and rebuild the search index."""
    from caxton.client import memory

    with connect(engine, token, timeout=3600.0) as client:
        render(memory.reindex(client), output)
    return 0
