"""Construct a Plan from the desired state and the engine's state snapshot (pure).

An agent with a rollout in flight follows the Argo Rollouts rule: the
candidate's spec desired -> no-op (a running rollout is never resubmitted);
the stable spec desired -> update with strategy ``abort``; any other spec ->
update with the agent's strategy, superseding the rollout. The engine applies
the same rule from its own truth when it receives the update.

A WASM tool whose spec or module changes also updates the agents that list it
(``_with_tool_users``; docs/plan-format.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from caxton.desired.model import DesiredAgent, DesiredState
from caxton.errors import InvalidInput
from caxton.planning import diff
from caxton.spec.identity import agent_id
from caxton.rules.agent_health import describe_rollout
from caxton.spec.plan import Action, AgentChange, FieldChange, Plan, PlanOptions, PlanSource
from caxton.spec.state import SERVING_STATE, AgentState, RolloutState, StateSnapshot

#: The strategy of an update that aborts the rollout in flight (its stable spec is desired).
ABORT = "abort"


@dataclass(frozen=True)
class PlanRequest:
    """Everything a plan depends on besides the two states (all supplied by the caller)."""

    plan_id: str
    created_at: str
    engine_url: str
    source: PlanSource
    prune: bool = True
    allow_delete_all: bool = False


def _create(agent: DesiredAgent) -> AgentChange:
    return AgentChange(
        id=agent.id,
        name=agent.name,
        kind=agent.kind,
        action="create",
        reason="not on the engine",
        strategy="immediate",
        file=agent.file,
        version_after=agent.version,
        digest_after=agent.digest,
        module_after=agent.module_sha256,
    )


def _delete(live: AgentState, prune: bool) -> AgentChange:
    return AgentChange(
        id=live.id,
        name=live.name,
        kind=live.kind,
        action="delete" if prune else "no-op",
        reason="not in the desired state" if prune else "not in the desired state; kept (--no-prune)",
        strategy="drain" if prune else "none",
        version_before=live.version,
        digest_before=live.spec_digest,
        module_before=live.module_sha256,
        revision_before=live.revision,
        state_before=live.state,
    )


def _state_change(live: AgentState) -> list[FieldChange]:
    wanted = SERVING_STATE.get(live.kind, "Active")
    if live.state == wanted:
        return []
    return [FieldChange(path="(state)", op="change", before=live.state, after=wanted)]


def _drift_reason(live: AgentState, spec_changed: bool) -> str | None:
    if live.applied_spec_digest and live.spec_digest != live.applied_spec_digest:
        return "drift: changed on the engine outside git"
    if not spec_changed and live.state != SERVING_STATE.get(live.kind, "Active"):
        return f"drift: {live.state.lower()} on the engine outside git"
    return None


def _compare(agent: DesiredAgent, live: AgentState) -> AgentChange:
    """Change of an agent both sides hold; the spec model is read only when the spec differs."""
    if live.kind != agent.kind:
        changes = [FieldChange(path="kind", op="change", before=live.kind, after=agent.kind)]
        return _both(agent, live, "replace", f"kind changed from {live.kind} to {agent.kind}", "immediate", changes)
    if live.rollout is not None:
        return _in_flight(agent, live, live.rollout)
    spec_changed = live.spec_digest != agent.digest
    changes = diff.field_changes(live.spec, agent.spec.model_dump(mode="json")) if spec_changed else []
    if spec_changed and live.module_sha256 != agent.module_sha256:
        changes.append(
            FieldChange(path="(module)", op="change", before=live.module_sha256, after=agent.module_sha256)
        )
    changes += _state_change(live)
    if not changes:
        return _both(agent, live, "no-op", "up to date", "none", [])
    drift = _drift_reason(live, spec_changed)
    reason = drift or ("spec changed" if spec_changed else "not serving")
    strategy = agent.spec.rollout.strategy if spec_changed else "resume"
    return _both(agent, live, "update", reason, strategy, changes, drift=drift is not None)


def _in_flight(agent: DesiredAgent, live: AgentState, rollout: RolloutState) -> AgentChange:
    """Change of an agent with a rollout in flight: left alone, aborted, or superseded."""
    now = describe_rollout(rollout)
    if agent.digest == rollout.candidate_digest:
        return _both(agent, live, "no-op", now, "none", [], rollout=rollout.id)
    if agent.digest == live.spec_digest:
        change = FieldChange(path="(rollout)", op="remove", before=f"{rollout.candidate_version} ({rollout.strategy})")
        return _both(agent, live, "update", f"{now} -> aborted: {live.version} is desired", ABORT, [change],
                     rollout=rollout.id)
    changes = diff.field_changes(live.spec, agent.spec.model_dump(mode="json"))
    if live.module_sha256 != agent.module_sha256:
        changes.append(
            FieldChange(path="(module)", op="change", before=live.module_sha256, after=agent.module_sha256)
        )
    return _both(agent, live, "update", f"{now} -> superseded by {agent.version}", agent.spec.rollout.strategy,
                 changes, rollout=rollout.id)


def _both(
    agent: DesiredAgent, live: AgentState, action: Action, reason: str, strategy: str, changes: list[FieldChange],
    *, drift: bool = False, rollout: str | None = None,
) -> AgentChange:
    """An AgentChange with the before (engine) and after (desired) sides filled in."""
    return AgentChange(
        id=agent.id, name=agent.name, kind=agent.kind, file=agent.file, action=action, reason=reason,
        drift=drift, strategy=strategy, changes=changes,
        version_before=live.version, version_after=agent.version,
        digest_before=live.spec_digest, digest_after=agent.digest,
        module_before=live.module_sha256, module_after=agent.module_sha256,
        revision_before=live.revision, state_before=live.state, rollout_id=rollout,
    )


def make_plan(desired: DesiredState, live: StateSnapshot, request: PlanRequest) -> Plan:
    """The plan that makes ``live`` equal to ``desired``; raises when it would delete everything."""
    if desired.has_errors():
        raise InvalidInput("the desired state is invalid; run `caxton validate` to see the problems")
    wanted = desired.by_id()
    running = {agent.id: agent for agent in live.agents}
    changes: list[AgentChange] = []
    for agent_id in sorted(set(wanted) | set(running)):
        if agent_id not in running:
            changes.append(_create(wanted[agent_id]))
        elif agent_id not in wanted:
            changes.append(_delete(running[agent_id], request.prune))
        else:
            changes.append(_compare(wanted[agent_id], running[agent_id]))
    changes = _with_tool_users(changes, wanted)
    _refuse_delete_all(changes, request)
    return Plan(
        plan_id=request.plan_id,
        created_at=request.created_at,
        engine_url=request.engine_url,
        engine_serial=live.serial,
        desired_digest=desired.digest,
        source=request.source,
        options=PlanOptions(prune=request.prune, allow_delete_all=request.allow_delete_all),
        changes=changes,
    )


def _with_tool_users(changes: list[AgentChange], wanted: dict[str, DesiredAgent]) -> list[AgentChange]:
    """A changed WASM tool also updates every agent that lists it (the reason names the tool).

    Its new revision reads the tool's new description and schema, and its rollout (the agent's own
    strategy) judges its messages with the new tool: a broken tool rolls the agent back too.
    """
    tools = {c.id: c for c in changes if c.kind == "wasm" and _spec_changed(c)}
    if not tools:
        return changes
    return [_uses_tools(c, wanted[c.id], tools) if c.id in wanted else c for c in changes]


def _spec_changed(change: AgentChange) -> bool:
    return change.action in ("update", "replace") and change.strategy != ABORT and any(
        field.path != "(state)" for field in change.changes)


def _uses_tools(change: AgentChange, agent: DesiredAgent, tools: dict[str, AgentChange]) -> AgentChange:
    used = {agent_id(name): name for name in agent.tools if agent_id(name) in tools and agent_id(name) != agent.id}
    if not used or change.action not in ("no-op", "update") or change.rollout_id is not None:
        return change
    named = ", ".join(sorted(used.values()))
    fields = [FieldChange(path=f"(tool {name})", op="change", before=_tool_text(tools[ident], "before"),
                          after=_tool_text(tools[ident], "after")) for ident, name in sorted(used.items())]
    if change.action == "no-op":
        return change.model_copy(update={
            "action": "update", "reason": f"tool {named} changed", "strategy": agent.spec.rollout.strategy,
            "changes": fields, "tools_changed": sorted(used.values())})
    return change.model_copy(update={"reason": f"{change.reason}; tool {named} changed",
                                      "changes": [*change.changes, *fields], "tools_changed": sorted(used.values())})


def _tool_text(change: AgentChange, side: str) -> str:
    """``1.0.0 (module b1d1454076dc)``: a tool's version and module on one side of its change."""
    version = change.version_before if side == "before" else change.version_after
    module = change.module_before if side == "before" else change.module_after
    return f"{version} (module {module[:12]})" if module else str(version)


def _refuse_delete_all(changes: list[AgentChange], request: PlanRequest) -> None:
    deletes = [c for c in changes if c.action == "delete"]
    if deletes and len(deletes) == len(changes) and not request.allow_delete_all:
        raise InvalidInput(
            f"this plan would delete every agent on the engine ({len(deletes)}): "
            f"the desired state at {request.source.path!r} has no agents",
            hint="check the path (a mistyped or empty directory?); pass --allow-delete-all if you "
            "really mean it, or --no-prune to never delete",
        )
