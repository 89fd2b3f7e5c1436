"""What a deploy writes in the store: a revision, its agent's transitions and the events, or the failure.

One store transaction each (``caxton.engine.state.store.Store.transaction``):
a revision that started and now serves (``record_deploy``), a candidate's
revision beside the serving one (``add_revision``), or a revision that could
not start (``record_failed_deploy``). Called by ``caxton.engine.operations``
under its lock, after the runtime started (or failed to).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from caxton import metrics
from caxton.engine import states
from caxton.engine.factory import AgentModel
from caxton.engine.logs import AgentLogs
from caxton.engine.state.records import AgentRow, Source, new_agent_row, utcnow
from caxton.engine.state.store import Store
from caxton.engine.state.transaction import Transaction
from caxton.errors import CaxtonError
from caxton.spec.state import SERVING_STATE


def record_deploy(
    store: Store, current: AgentRow | None, spec: AgentModel, normal: dict[str, Any], module: bytes | None,
    digest: str, number: int, source: Source, *, revisions_kept: int,
) -> AgentRow:
    """Record a revision that started as the serving one: its blobs, the transitions to serving, the event."""
    previous = current.revision if current else None
    with store.transaction() as tx:
        add_revision(tx, spec, normal, module, digest, source, number)
        if current is not None and states.is_serving(current.kind, current.state):
            row = current
        elif current is not None and states.is_paused(current.kind, current.state):
            row = tx.transition(current, SERVING_STATE[current.kind], source, revision=number)
        else:
            row = new_lifecycle(tx, current, spec, source)
            for state in states.START_PATH[spec.kind][1:]:
                row = tx.transition(row, state, source, revision=number)
        row = replace(
            row, name=spec.name, revision=number, applied_spec_digest=digest, traffic={str(number): 100},
            git_commit=source.git_commit, plan_id=source.plan_id, updated_at=utcnow(),
        )
        tx.save_agent(row)
        tx.event(
            "deployed", source, agent_id=spec.id, to_state=row.state, revision=number,
            message=f"revision {number} ({spec.version}) serving"
            + (f", replacing revision {previous}" if previous else ""),
            data={"spec_digest": digest, "previous_revision": previous, "version": spec.version},
        )
        tx.prune_revisions(spec.id, revisions_kept, protect={number})
    return row


def add_revision(
    tx: Transaction, spec: AgentModel, normal: dict[str, Any], module: bytes | None,
    digest: str, source: Source, number: int,
) -> int:
    """Store the spec and module blobs and revision ``number`` of ``spec``."""
    spec_sha = tx.put_spec(normal)
    module_sha = tx.put_blob(module, "module") if module is not None else None
    return tx.add_revision(
        spec.id, version=spec.version, spec_sha256=spec_sha, module_sha256=module_sha,
        spec_digest=digest, source=source, number=number,
    )


def new_lifecycle(tx: Transaction, current: AgentRow | None, spec: AgentModel, source: Source) -> AgentRow:
    """A new lifecycle of ``spec``'s agent at its initial state (after a final state, or its first)."""
    row = new_agent_row(spec.id, spec.name, spec.kind, source)
    if current is not None:
        row = replace(row, created_at=current.created_at)
        tx.event(
            "lifecycle_restarted", source, agent_id=spec.id, from_state=current.state, to_state=row.state,
            message=f"new deploy after {current.state}: a new lifecycle starts at {row.state}",
        )
    else:
        tx.event("created", source, agent_id=spec.id, to_state=row.state, message=f"{spec.kind} agent created")
    tx.save_agent(row)
    return row


def record_failed_deploy(
    store: Store, logs: AgentLogs, current: AgentRow | None, spec: AgentModel, normal: dict[str, Any],
    module: bytes | None, digest: str, number: int, source: Source, *, stage: str, error: CaxtonError,
) -> None:
    """Record a revision that could not be built (``stage='build'``) or started (``'start'``).

    ``error``'s message gains the stage and what keeps serving. An agent that is not final keeps its
    state (an event says why); a new or ended one starts a lifecycle that ends failed at this revision.
    """
    metrics.CONFIG_RELOAD_FAILURES.inc()
    metrics.AGENT_RELOADS.labels(spec.id, "failure").inc()
    doing = "loading" if stage == "build" else "starting"
    keeps = current is not None and not states.is_final(current.kind, current.state)
    suffix = ""
    if current is not None and keeps:
        serving = states.is_serving(current.kind, current.state)
        suffix = f"; revision {current.revision} keeps serving" if serving else f"; it stays {current.state}"
    error.message = f"deploy of {spec.name!r} revision {number} failed while {doing} it: {error.message}{suffix}"
    logs.add(spec.id, "error", error.message, revision=number)
    with store.transaction() as tx:
        if keeps and current is not None:
            tx.event("deploy_failed", source, agent_id=spec.id, revision=number, message=error.message,
                     data={"error": error.to_dict(), "stage": stage})
            return
        add_revision(tx, spec, normal, module, digest, source, number)
        row = new_lifecycle(tx, current, spec, source)
        reached = {"config": {"build": 2, "start": 3}, "wasm": {"build": 1, "start": 2}}[spec.kind][stage]
        for state in states.START_PATH[spec.kind][1:reached]:
            row = tx.transition(row, state, source, revision=number)
        row = tx.transition(row, states.FAILED, source, revision=number, message=error.message)
        tx.save_agent(replace(row, revision=number, applied_spec_digest=digest, traffic={},
                              git_commit=source.git_commit, plan_id=source.plan_id))
        tx.event("deploy_failed", source, agent_id=spec.id, revision=number, message=error.message,
                 data={"error": error.to_dict(), "stage": stage})
