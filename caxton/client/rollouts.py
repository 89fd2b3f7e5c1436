"""Client side of rollouts: status, promote and abort over the engine API.

Called by ``caxton rollout status|promote|abort`` (``caxton.cli.rollout``).
The engine runs every rollout; these calls only read it or end it early.
"""

from __future__ import annotations

import getpass
import os
import socket
from urllib.parse import quote

from caxton.client.engine import EngineClient
from caxton.errors import InvalidInput
from caxton.spec import api


def status(client: EngineClient, name: str | None = None, *, limit: int | None = None) -> list[api.RolloutView]:
    """Rollouts of ``name`` (or of every agent), newest first; active ones carry a ``live`` window."""
    params = {"limit": limit} if limit else {}
    path = f"/rollouts/{_seg(name)}" if name else "/rollouts"
    return client.call(api.RolloutList, "GET", path, params=params).rollouts


def promote(client: EngineClient, name: str) -> api.RolloutView:
    """Skip the remaining steps of ``name``'s rollout: all traffic to the new revision."""
    return client.call(api.RolloutView, "POST", f"/rollouts/{_seg(name)}/promote", json={"actor": _actor()})


def abort(client: EngineClient, name: str) -> api.RolloutView:
    """Roll ``name``'s rollout back now: all traffic to the stable revision."""
    return client.call(api.RolloutView, "POST", f"/rollouts/{_seg(name)}/abort", json={"actor": _actor()})


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _seg(name: str) -> str:
    if not name or "/" in name:
        raise InvalidInput(f"{name!r} is not an agent name", hint="agent names are like data-processor")
    return quote(name, safe="")
