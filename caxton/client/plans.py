"""Client side of plan and apply: make a plan against an engine, check it is fresh, submit it.

Called by ``caxton plan``, ``caxton apply`` (and the reconcile loop). The
planning itself is pure (``caxton.planning.build``); this module supplies its
inputs (desired state from disk or git, the engine's snapshot) and talks to the
engine's lock and apply endpoints.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from caxton.client.engine import EngineClient
from caxton.desired import loader
from caxton.desired.model import DesiredState
from caxton.errors import StalePlan, ValidationFailed
from caxton.planning import build, targeting
from caxton.spec import api
from caxton.spec.plan import Plan, PlanSource


@dataclass(frozen=True)
class Planned:
    plan: Plan
    desired: DesiredState


def load_desired(path: str, ref: str | None, options: loader.Options = loader.SERIAL) -> DesiredState:
    """The desired state at ``path`` (``ref``: a git revision); invalid -> ``ValidationFailed``."""
    desired = loader.load(Path(path), ref=ref, options=options)
    if desired.has_errors():
        errors = [d for d in desired.diagnostics if d.severity.value == "error"]
        raise ValidationFailed(
            f"the desired state at {path} is invalid ({len(errors)} error(s)); nothing was planned",
            hint=f"run `caxton validate {path}` and fix the problems",
            details=desired,
        )
    return desired


def make(
    client: EngineClient, path: str, *, ref: str | None = None, prune: bool = True, allow_delete_all: bool = False,
    options: loader.Options = loader.SERIAL, targets: Sequence[str] = (),
) -> Planned:
    """Plan ``path`` (at ``ref``) against the engine behind ``client``; only ``targets`` when given.

    The plan records ``path`` made absolute, so a saved plan applies from any working directory.
    """
    desired = load_desired(path, ref, options)
    snapshot = client.state()
    request = build.PlanRequest(
        plan_id=uuid.uuid4().hex,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        engine_url=client.base_url,
        source=PlanSource(path=os.path.abspath(path), ref=ref, git_commit=desired.git_commit),
        prune=prune,
        allow_delete_all=allow_delete_all,
    )
    return Planned(targeting.select(build.make_plan(desired, snapshot, request), targets), desired)


def reload_for(plan: Plan, options: loader.Options = loader.SERIAL) -> DesiredState:
    """The desired state a saved plan was made from; refuses it when the files changed since."""
    desired = load_desired(plan.source.path, plan.source.ref, options)
    if desired.digest != plan.desired_digest:
        raise StalePlan(
            "plan is stale: the desired state changed since it was made; run plan again",
            hint=f"the files at {plan.source.path} no longer match the plan (digest {plan.desired_digest[:19]})",
        )
    return desired


def holder() -> str:
    """Who holds the apply lock: user@host pid N."""
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def submission(plan: Plan, desired: DesiredState, lock_token: str) -> api.ApplySubmission:
    """The body of ``POST /api/v1/applies``: the plan's changes with the specs to apply."""
    wanted = desired.by_id()
    changes = []
    for change in plan.actionable():
        item = api.ApplyChange(id=change.id, action=api.ChangeAction(change.action), strategy=change.strategy)
        agent = wanted.get(change.id)
        if agent is not None and change.action != "delete":
            item.spec = agent.spec.model_dump(mode="json")
            item.digest = agent.digest
            if agent.module_bytes is not None:
                item.module = base64.b64encode(agent.module_bytes).decode("ascii")
        changes.append(item)
    return api.ApplySubmission(plan_id=plan.plan_id, engine_serial=plan.engine_serial,
                               desired_digest=plan.desired_digest, git_commit=plan.source.git_commit,
                               lock_token=lock_token, changes=changes)


# --- the engine's lock and apply endpoints ---------------------------------------------------
def acquire_lock(client: EngineClient, reason: str, ttl: float = 30.0) -> api.LockGrant:
    """Take the engine's apply lock (``LockHeld`` names the holder when someone else has it)."""
    return client.call(api.LockGrant, "POST", "/lock", json={"holder": holder(), "reason": reason, "ttl": ttl})


def renew_lock(client: EngineClient, token: str, ttl: float = 30.0) -> api.LockGrant:
    return client.call(api.LockGrant, "PUT", "/lock", json={"token": token, "ttl": ttl})


def release_lock(client: EngineClient, token: str | None, *, force: bool = False) -> api.LockRelease:
    params = {"force": "true"} if force else {"token": token}
    return client.call(api.LockRelease, "DELETE", "/lock", params=params)


def lock_status(client: EngineClient) -> api.LockStatus:
    return client.call(api.LockStatus, "GET", "/lock")


def submit(client: EngineClient, body: api.ApplySubmission) -> api.ApplyView:
    return client.call(api.ApplyView, "POST", "/applies", json=body.model_dump(mode="json"))


def apply_status(client: EngineClient, apply_id: str, *, after: int = 0, wait: float = 0.0) -> api.ApplyView:
    params = {"after": after, "wait": wait}
    return client.call(api.ApplyView, "GET", f"/applies/{apply_id}", params=params)


def history(client: EngineClient, name: str) -> api.AgentHistory:
    return client.call(api.AgentHistory, "GET", f"/agents/{name}/revisions")


def rollback(
    client: EngineClient, name: str, *, to_version: str | None = None, to_revision: int | None = None
) -> api.OperationResult:
    body = {"to_version": to_version, "to_revision": to_revision, "source": {"actor": holder()}}
    return client.call(api.OperationResult, "POST", f"/agents/{name}/rollback", json=body)
