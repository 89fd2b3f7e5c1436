"""docs/memory.md documents every `caxton memory` command and every memory route."""

from __future__ import annotations

from fastapi.routing import APIRoute

from caxton.cli import memory as cli_memory
from caxton.engine.http import memory as memory_api
from tests.support.paths import REPO_ROOT


def test_every_command_and_route_is_documented() -> None:
    text = (REPO_ROOT / "docs" / "memory.md").read_text("utf-8")
    commands = [c.name for c in cli_memory.app.registered_commands]
    assert len(commands) == 7
    assert all(c.callback and c.callback.__doc__ for c in cli_memory.app.registered_commands)
    assert not [name for name in commands if f"`caxton memory {name}" not in text]
    routes = [(m, r.path) for r in memory_api.routes().routes if isinstance(r, APIRoute) for m in r.methods]
    assert len(routes) == 17
    assert not [f"{m} {p}" for m, p in routes if f"`{m} {p}`" not in text]
