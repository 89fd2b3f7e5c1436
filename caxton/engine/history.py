"""Revision history and rollback of one agent.

The store keeps the last N revisions of every agent (spec and WASM blob,
content-addressed). ``history`` lists them with their outcome; ``rollback``
re-applies a kept revision through the ordinary deploy operation, so the next
plan from git shows the difference honestly as drift.
Called by the API (``caxton.engine.http.applies``).
"""

from __future__ import annotations

from typing import Any

from caxton.engine.intake import Prepared
from caxton.engine.operations import OperationResult, Operations
from caxton.engine.state.records import RevisionRow, Source
from caxton.engine.state.store import Store
from caxton.errors import InvalidInput, NotFound

_OUTCOMES = {
    "deployed": "deployed",
    "deploy_failed": "failed",
    "rollout_succeeded": "deployed",
    "rollout_rolled_back": "rolled_back",
    "rollout_superseded": "superseded",
    "rollout_failed": "failed",
}


def history(store: Store, ops: Operations, name: str) -> dict[str, Any]:
    """Every kept revision of ``name``, newest first, with its outcome."""
    agent = ops.require(name)
    outcomes: dict[int, str] = {}
    for event in store.events(agent_id=agent.id, limit=100_000):
        if event.revision is not None and event.what in _OUTCOMES:
            outcomes[event.revision] = _OUTCOMES[event.what]
    rows = sorted(store.revisions(agent.id), key=lambda r: r.number, reverse=True)
    return {
        "agent": agent.id,
        "name": agent.name,
        "serving": agent.revision,
        "state": agent.state,
        "revisions": [_revision(r, agent.revision, outcomes.get(r.number)) for r in rows],
    }


def _revision(row: RevisionRow, serving: int | None, outcome: str | None) -> dict[str, Any]:
    status = "serving" if row.number == serving and outcome != "failed" else (outcome or "deployed")
    if status == "deployed" and serving is not None and row.number < serving:
        status = "superseded"
    return {
        "revision": row.number, "version": row.version, "digest": row.spec_digest,
        "module_sha256": row.module_sha256, "git_commit": row.git_commit, "plan_id": row.plan_id,
        "actor": row.actor, "applied_at": row.created_at, "outcome": status,
    }


def rollback(
    store: Store, ops: Operations, name: str, *, to_version: str | None, to_revision: int | None, source: Source
) -> OperationResult:
    """Deploy a kept revision again (by number, by version, or the one before the serving one)."""
    agent = ops.require(name)
    target = _target(store.revisions(agent.id), agent.revision, to_version, to_revision, agent.id)
    spec = store.spec_of(target)
    module = store.blob(target.module_sha256) if target.module_sha256 else None
    actor = source.actor or "rollback"
    return ops.deploy(Prepared.of(spec, module), Source(actor=f"{actor} (rollback to revision {target.number})",
                                           plan_id=source.plan_id, git_commit=target.git_commit))


def _target(
    rows: list[RevisionRow], serving: int | None, to_version: str | None, to_revision: int | None, agent: str
) -> RevisionRow:
    if to_version is not None and to_revision is not None:
        raise InvalidInput("give --to-version or --to-revision, not both")
    kept = ", ".join(f"{r.number} ({r.version})" for r in sorted(rows, key=lambda r: r.number)) or "none"
    if to_revision is not None:
        found = [r for r in rows if r.number == to_revision]
    elif to_version is not None:
        found = sorted((r for r in rows if r.version == to_version), key=lambda r: r.number)[-1:]
    else:
        found = sorted((r for r in rows if serving is None or r.number < serving), key=lambda r: r.number)[-1:]
    if not found:
        wanted = f"revision {to_revision}" if to_revision is not None else (
            f"version {to_version}" if to_version is not None else "an earlier revision")
        raise NotFound(f"{agent} has no kept {wanted}", hint=f"kept revisions: {kept} (see `caxton history {agent}`)")
    return found[0]
