"""The engine's apply lock (``/lock``): take it, renew it, release it (or force it), read who holds it.

Called by plan/apply (``caxton.client.plan_apply`` holds it while it submits), ``caxton lock
status|release`` and the reconcile loop (which frees a lock its own crashed apply left behind).
"""

from __future__ import annotations

from caxton.client.transport import EngineClient, actor
from caxton.spec import api


def acquire(client: EngineClient, reason: str, ttl: float = 30.0) -> api.LockGrant:
    """Take the engine's apply lock (``LockHeld`` names the holder when someone else has it)."""
    return client.call(api.LockGrant, "POST", "/lock", json={"holder": actor(), "reason": reason, "ttl": ttl})


def renew(client: EngineClient, token: str, ttl: float = 30.0) -> api.LockGrant:
    return client.call(api.LockGrant, "PUT", "/lock", json={"token": token, "ttl": ttl})


def release(client: EngineClient, token: str | None, *, force: bool = False) -> api.LockRelease:
    """Release the lock held with ``token``; ``force``: whoever holds it (admin)."""
    params = {"force": "true"} if force else {"token": token}
    return client.call(api.LockRelease, "DELETE", "/lock", params=params)


def status(client: EngineClient) -> api.LockStatus:
    return client.call(api.LockStatus, "GET", "/lock")
