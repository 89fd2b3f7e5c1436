"""The engine's applies (``/applies``): submit one, read one (long-polling its progress lines), list them.

The orchestration around these calls (the lock, following to an outcome) is the plan/apply use
case, ``caxton.client.plan_apply``; ``caxton applies`` and the reconcile loop read through here.
"""

from __future__ import annotations

from caxton.client.transport import EngineClient
from caxton.spec import api


def submit(client: EngineClient, body: api.ApplySubmission) -> api.ApplyView:
    return client.call(api.ApplyView, "POST", "/applies", json=body.model_dump(mode="json"))


def get(client: EngineClient, apply_id: str, *, after: int = 0, wait: float = 0.0) -> api.ApplyView:
    """One apply with its results and its progress lines after line ``after`` (``wait``: long poll, seconds)."""
    params = {"after": after, "wait": wait}
    return client.call(api.ApplyView, "GET", f"/applies/{apply_id}", params=params)


def recent(client: EngineClient, limit: int = 20) -> list[api.ApplySummary]:
    """The engine's most recent applies, newest first (without their progress lines)."""
    return client.call(api.ApplyList, "GET", "/applies", params={"limit": limit}).applies
