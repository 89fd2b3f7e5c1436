"""HTTP routes of plan/apply: the apply lock, plan submissions, history and rollback.

Mounted by ``caxton.engine.http.app.create_app``; the work is done by
``caxton.engine.lease``, ``caxton.engine.applies`` and ``caxton.engine.history``
through the ``Engine`` facade (``caxton.engine.control``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from caxton.engine.auth import attributed
from caxton.engine.http.deps import CallerDep, EngineDep, router as new_router
from caxton.engine.http.openapi import errors
from caxton.engine.state.records import Source
from caxton.spec import api as wire


def routes() -> APIRouter:
    """The lock, applies, revisions and rollback routes."""
    router = new_router()

    @router.get("/lock", tags=["apply"], response_model=wire.LockStatus)
    def lock_status(engine: EngineDep) -> dict[str, Any]:
        return engine.lock_status()

    @router.post("/lock", tags=["apply"], response_model=wire.LockGrant, responses=errors(409))
    def lock_acquire(body: wire.LockRequest, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
        return engine.acquire_lock(attributed(caller, body.holder) or body.holder, body.reason, body.ttl)

    @router.put("/lock", tags=["apply"], response_model=wire.LockGrant, responses=errors(409))
    def lock_renew(body: wire.RenewRequest, engine: EngineDep) -> dict[str, Any]:
        return engine.renew_lock(body.token, body.ttl)

    @router.delete("/lock", tags=["apply"], response_model=wire.LockRelease, responses=errors(409))
    def lock_release(engine: EngineDep, token: str | None = None, force: bool = False) -> dict[str, Any]:
        return engine.release_lock(token, force=force)

    @router.post("/applies", tags=["apply"], response_model=wire.ApplyView, responses=errors(409))
    def apply_submit(body: wire.ApplySubmission, engine: EngineDep) -> dict[str, Any]:
        """Run a plan's changes (see docs/api.md); refused when stale or when the lock is not held."""
        return engine.submit_apply(body.model_dump(mode="json"))

    @router.get("/applies", tags=["apply"], response_model=wire.ApplyList)
    def apply_list(engine: EngineDep, limit: int = Query(20, ge=1, le=100)) -> dict[str, Any]:
        """The most recent applies, newest first (without their progress lines)."""
        return engine.recent_applies(limit)

    @router.get("/applies/{apply_id}", tags=["apply"], response_model=wire.ApplyView, responses=errors(404))
    async def apply_get(apply_id: str, engine: EngineDep, after: int = Query(0, ge=0, le=wire.MAX_INT),
                        wait: float = Query(0.0, ge=0.0, le=10.0)) -> dict[str, Any]:
        """An apply and its progress lines after ``after``; ``wait``: long-poll (on the loop, no thread held)."""
        return await engine.follow_apply(apply_id, after=after, wait=wait)

    @router.get("/agents/{name}/revisions", tags=["agents"], response_model=wire.AgentHistory,
                responses=errors(404))
    def revisions(name: str, engine: EngineDep) -> dict[str, Any]:
        return engine.revisions(name)

    @router.post("/agents/{name}/rollback", tags=["agents"], response_model=wire.OperationResult,
                 responses=errors(404, 409))
    def rollback(name: str, body: wire.RollbackRequest, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
        source = Source(actor=attributed(caller, body.source.actor if body.source else None),
                        plan_id=body.source.plan_id if body.source else None)
        return engine.rollback(name, to_version=body.to_version, to_revision=body.to_revision,
                               source=source).to_dict()

    return router
