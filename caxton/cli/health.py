"""``caxton health``: is the engine up, and how is it doing.

Exit 0 when the engine answers ``healthy``, 1 otherwise (unreachable,
``unhealthy`` while starting or stopping, ``degraded`` with ``--detailed``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, Output, OutputOption, TokenOption, connect
from caxton.cli.views import render
from caxton.spec import health as vocabulary


def health(
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
    output: OutputOption = Output.text,
    detailed: Annotated[bool, typer.Option("--detailed", help="Show per-agent runtime health.")] = False,
) -> int:
    """Check the engine's health."""
    from caxton.cli.views.health import Checked
    from caxton.client import status

    with connect(engine, token, timeout=10.0) as client:
        result = status.health_detailed(client) if detailed else status.health(client)
    render(Checked(result, engine=client.base_url), output)
    return 0 if result.status == vocabulary.HEALTHY else 1
