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
from typing import Any

from caxton.client.engine import EngineClient
from caxton.desired import loader
from caxton.desired.model import DesiredState
from caxton.errors import StalePlan, ValidationFailed
from caxton.planning import build, targeting
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


def submission(plan: Plan, desired: DesiredState, lock_token: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/applies``: the plan's changes with the specs to apply."""
    wanted = desired.by_id()
    changes = []
    for change in plan.actionable():
        item: dict[str, Any] = {"id": change.id, "action": change.action, "strategy": change.strategy}
        agent = wanted.get(change.id)
        if agent is not None and change.action != "delete":
            item["spec"] = agent.spec.model_dump(mode="json")
            item["digest"] = agent.digest
            if agent.module_bytes is not None:
                item["module"] = base64.b64encode(agent.module_bytes).decode("ascii")
        changes.append(item)
    return {
        "plan_id": plan.plan_id,
        "engine_serial": plan.engine_serial,
        "desired_digest": plan.desired_digest,
        "git_commit": plan.source.git_commit,
        "lock_token": lock_token,
        "changes": changes,
    }


# --- the engine's lock and apply endpoints ---------------------------------------------------
def acquire_lock(client: EngineClient, reason: str, ttl: float = 30.0) -> dict[str, Any]:
    """Take the engine's apply lock (``LockHeld`` names the holder when someone else has it)."""
    result: dict[str, Any] = client.request("POST", "/lock", json={"holder": holder(), "reason": reason, "ttl": ttl})
    return result


def renew_lock(client: EngineClient, token: str, ttl: float = 30.0) -> dict[str, Any]:
    result: dict[str, Any] = client.request("PUT", "/lock", json={"token": token, "ttl": ttl})
    return result


def release_lock(client: EngineClient, token: str | None, *, force: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"force": "true"} if force else {"token": token}
    result: dict[str, Any] = client.request("DELETE", "/lock", params=params)
    return result


def lock_status(client: EngineClient) -> dict[str, Any]:
    result: dict[str, Any] = client.request("GET", "/lock")
    return result


def submit(client: EngineClient, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = client.request("POST", "/applies", json=body)
    return result


def apply_status(client: EngineClient, apply_id: str, *, after: int = 0, wait: float = 0.0) -> dict[str, Any]:
    params = {"after": after, "wait": wait}
    result: dict[str, Any] = client.request("GET", f"/applies/{apply_id}", params=params)
    return result


def history(client: EngineClient, name: str) -> dict[str, Any]:
    result: dict[str, Any] = client.request("GET", f"/agents/{name}/revisions")
    return result


def rollback(
    client: EngineClient, name: str, *, to_version: str | None = None, to_revision: int | None = None
) -> dict[str, Any]:
    body = {"to_version": to_version, "to_revision": to_revision, "source": {"actor": holder()}}
    result: dict[str, Any] = client.request("POST", f"/agents/{name}/rollback", json=body)
    return result
