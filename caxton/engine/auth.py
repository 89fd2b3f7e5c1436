"""Who is calling the engine: tokens, roles and the request guard in front of every route.

Work in progress: ``Principal`` is the identity the auth middleware stores as
``scope["state"]["principal"]`` (``request.state.principal``); ``None`` for an
anonymous request on an engine with no token configured.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """A verified caller: the token's name, its roles, and the agents it may message (``None``: any)."""

    name: str
    roles: frozenset[str]
    agents: frozenset[str] | None = None
