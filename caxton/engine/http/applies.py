"""HTTP routes of plan/apply: the apply lock, plan submissions, history and rollback.

Mounted by ``caxton.engine.http.app.create_app``; the work is done by
``caxton.engine.lease``, ``caxton.engine.applies`` and ``caxton.engine.history``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request

from caxton.engine import history
from caxton.engine.auth import attributed, principal_of
from caxton.engine.http.openapi import errors
from caxton.engine.state.store import Source
from caxton.spec import api as wire

if TYPE_CHECKING:
    from caxton.engine.core import Engine

PREFIX = "/api/v1"


def mount(app: FastAPI, engine: Engine) -> None:
    """Add the lock, applies, revisions and rollback routes to ``app``."""

    @app.get(PREFIX + "/lock", tags=["apply"], response_model=wire.LockStatus)
    def lock_status() -> dict[str, Any]:
        lease = engine.lock.current()
        return {"held": lease is not None, "lease": lease.public() if lease else None}

    @app.post(PREFIX + "/lock", tags=["apply"], response_model=wire.LockGrant, responses=errors(409))
    def lock_acquire(body: wire.LockRequest, request: Request) -> dict[str, Any]:
        lease = engine.lock.acquire(attributed(principal_of(request), body.holder) or body.holder, body.reason, body.ttl)
        return {"token": lease.token, "lease": lease.public()}

    @app.put(PREFIX + "/lock", tags=["apply"], response_model=wire.LockGrant, responses=errors(409))
    def lock_renew(body: wire.RenewRequest) -> dict[str, Any]:
        lease = engine.lock.renew(body.token, body.ttl)
        return {"token": lease.token, "lease": lease.public()}

    @app.delete(PREFIX + "/lock", tags=["apply"], response_model=wire.LockRelease, responses=errors(409))
    def lock_release(token: str | None = None, force: bool = False) -> dict[str, Any]:
        released = engine.lock.release(token, force=force)
        return {"released": released.public() if released else None}

    @app.post(PREFIX + "/applies", tags=["apply"], response_model=wire.ApplyView, responses=errors(409))
    def apply_submit(body: wire.ApplySubmission) -> dict[str, Any]:
        """Run a plan's changes (see docs/api.md); refused when stale or when the lock is not held."""
        return engine.applies.submit(body.model_dump(mode="json"))

    @app.get(PREFIX + "/applies", tags=["apply"], response_model=wire.ApplyList)
    def apply_list(limit: int = Query(20, ge=1, le=100)) -> dict[str, Any]:
        """The most recent applies, newest first (without their progress lines)."""
        return engine.applies.recent(limit)

    @app.get(PREFIX + "/applies/{apply_id}", tags=["apply"], response_model=wire.ApplyView, responses=errors(404))
    async def apply_get(apply_id: str, after: int = Query(0, ge=0, le=wire.MAX_INT),
                        wait: float = Query(0.0, ge=0.0, le=10.0)) -> dict[str, Any]:
        """An apply and its progress lines after ``after``; ``wait``: long-poll (on the loop, no thread held)."""
        return await engine.applies.follow(apply_id, after=after, wait=wait)

    @app.get(PREFIX + "/agents/{name}/revisions", tags=["agents"], response_model=wire.AgentHistory,
             responses=errors(404))
    def revisions(name: str) -> dict[str, Any]:
        return history.history(engine.store, engine.ops, name)

    @app.post(PREFIX + "/agents/{name}/rollback", tags=["agents"], response_model=wire.OperationResult,
              responses=errors(404, 409))
    def rollback(name: str, body: wire.RollbackRequest, request: Request) -> dict[str, Any]:
        source = Source(actor=attributed(principal_of(request), body.source.actor if body.source else None),
                        plan_id=body.source.plan_id if body.source else None)
        return history.rollback(engine.store, engine.ops, name, to_version=body.to_version,
                                to_revision=body.to_revision, source=source).to_dict()
