"""``caxton health``: is the engine up, and how is it doing.

Exit 0 when the engine answers ``healthy``, 1 otherwise (unreachable,
``unhealthy`` while starting or stopping, ``degraded`` with ``--detailed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from caxton.spec.api import Health

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
    return 0 if result.status == vocabulary.HEALTHY else 1


def _render(engine: str, result: Health) -> None:
    from caxton.spec.api import HealthDetailed

    phase = result.phase
    echo(f"engine {engine}: {result.status}" + (f" ({phase})" if phase != "serving" else ""))
    echo(f"  agents serving: {result.agents}  memory: {result.memory_backend}")
    if isinstance(result, HealthDetailed):
        echo(f"  version {result.version}  uptime {result.uptime_seconds}s  serial {result.serial}")
        if result.agents_by_state:
            echo("  agents by state: " + ", ".join(f"{k} {v}" for k, v in sorted(result.agents_by_state.items())))
        memory = result.memory
        if memory.enabled is not False:
            problem = f": {memory.message}" if memory.message else ""
            echo(f"  memory health: {memory.status}{problem}")
        storage = result.storage
        if storage.status != vocabulary.HEALTHY:
            echo(f"  storage: {storage.status}: {storage.message} ({storage.seconds_ago}s ago)")
            if storage.hint:
                echo(f"    hint: {storage.hint}")
