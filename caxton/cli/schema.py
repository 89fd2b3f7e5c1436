"""``caxton schema export [DIR]``: write the JSON Schemas of the file formats.

The pydantic models in ``caxton.spec`` are the source of truth; ``schemas/``
holds what this command generates (a test keeps them in sync). Editors can
use them for completion of agent files and ``caxton.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from caxton.cli.common import echo, note

app = typer.Typer(help="JSON Schemas of agent files and caxton.yaml.", no_args_is_help=True)

SCHEMA_BASE = "https://caxton.dev/schemas/"


def _agent() -> dict[str, Any]:
    from caxton.spec.agent import AGENT_ADAPTER

    return AGENT_ADAPTER.json_schema()


def _config_agent() -> dict[str, Any]:
    from caxton.spec.agent import ConfigAgent

    return ConfigAgent.model_json_schema()


def _wasm_agent() -> dict[str, Any]:
    from caxton.spec.agent import WasmAgent

    return WasmAgent.model_json_schema()


def _project() -> dict[str, Any]:
    from caxton.spec.project import ProjectConfig

    return ProjectConfig.model_json_schema()


#: file stem -> (title, generator). Explicit: add a format here to export it.
SCHEMAS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "agent": ("A Caxton agent file (config or WASM agent)", _agent),
    "config-agent": ("A Caxton config agent", _config_agent),
    "wasm-agent": ("A Caxton WASM agent", _wasm_agent),
    "project": ("caxton.yaml: project settings", _project),
}


def build_schemas() -> dict[str, str]:
    """File name -> JSON text of every schema (deterministic)."""
    out = {}
    for stem, (title, generate) in SCHEMAS.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"{SCHEMA_BASE}{stem}.schema.json", **generate()}
        schema["title"] = title
        out[f"{stem}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


@app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="Where to write *.schema.json.")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 if DIR is out of date.")] = False,
) -> int:
    """Write the JSON Schemas generated from the models to DIR."""
    stale = []
    for name, text in build_schemas().items():
        target = directory / name
        current = target.read_text("utf-8") if target.is_file() else None
        if current == text:
            continue
        stale.append(name)
        if not check:
            directory.mkdir(parents=True, exist_ok=True)
            target.write_text(text, "utf-8")
            echo(f"wrote {target}")
    if check and stale:
        note(f"out of date in {directory}: {', '.join(stale)} (run: caxton schema export {directory})")
        return 1
    if not stale:
        note(f"{directory}: up to date")
    return 0
