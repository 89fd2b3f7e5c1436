"""``caxton health``: is the engine up, and how is it doing.

Exit 0 when the engine answers ``healthy``, 1 otherwise (unreachable,
``unhealthy`` while starting or stopping, ``degraded`` with ``--detailed``).
"""

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
from caxton.spec import health as vocabulary


def health(
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
    output: OutputOption = Output.text,
    detailed: Annotated[bool, typer.Option("--detailed", help="Show per-agent runtime health.")] = False,
) -> int:
    """Check the engine's health."""
    from caxton.client.engine import EngineClient

    with EngineClient(engine, token=token, timeout=10.0) as client:
        result = client.health_detailed() if detailed else client.health()
    if output is Output.json:
        emit_json(result)
    else:
        _render(client.base_url, result)
    return 0 if result.get("status") == vocabulary.HEALTHY else 1


def _render(engine: str, result: dict[str, object]) -> None:
    phase = result.get("phase")
    echo(f"engine {engine}: {result.get('status')}" + (f" ({phase})" if phase not in (None, "serving") else ""))
    echo(f"  agents serving: {result.get('agents')}  memory: {result.get('memory_backend')}")
    if "uptime_seconds" in result:
        echo(f"  version {result.get('version')}  uptime {result.get('uptime_seconds')}s  serial {result.get('serial')}")
        by_state = result.get("agents_by_state") or {}
        if isinstance(by_state, dict) and by_state:
            echo("  agents by state: " + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())))
        memory = result.get("memory")
        if isinstance(memory, dict) and memory.get("enabled", True):
            problem = f": {memory['message']}" if memory.get("message") else ""
            echo(f"  memory health: {memory.get('status')}{problem}")
