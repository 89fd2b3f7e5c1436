"""Per-agent SYNC and HEALTH, Argo CD style: a pure function of the engine's snapshot and a plan.

SYNC says whether the engine has (or is rolling out) what the desired state
asks for: ``Synced`` when the plan has nothing to do for the agent (a running
rollout to the desired version is "no-op" for the planner), ``OutOfSync``
when it would create, update, replace or delete it, ``-`` without a plan.
HEALTH says how the agent is doing now, from the snapshot: ``Progressing``
(a rollout running, or not serving yet), ``Paused`` (a rollout waiting for
data or for a human), ``Degraded`` (failed, or its desired version rolled
back: the loop holds it until the desired state changes), ``Suspended``,
``Missing`` (desired, not on the engine) or ``Healthy``. Each row carries the
reason to show. Called by ``caxton.reconcile.passes`` (rows reported by the
loop) and ``caxton agents list`` (no plan: SYNC is ``-``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from caxton.rules import agent_health
from caxton.rules.agent_health import (  # the HEALTH words, re-exported for the loop and the CLI
    DEGRADED as DEGRADED,
    HEALTHY as HEALTHY,
    MISSING as MISSING,
    PAUSED as PAUSED,
    PROGRESSING as PROGRESSING,
    SUSPENDED as SUSPENDED,
)
from caxton.spec.plan import AgentChange, Plan
from caxton.spec.state import AgentState, StateSnapshot

SYNCED, OUT_OF_SYNC, UNKNOWN = "Synced", "OutOfSync", "-"
#: Health that means "a rollout or a start is still under way".
IN_FLIGHT = frozenset({PROGRESSING, PAUSED})


@dataclass(frozen=True)
class Held:
    """A desired version whose rollout rolled back: not retried until the agent's desired state changes."""

    digest: str
    version: str | None
    reason: str
    apply_id: str | None = None


@dataclass(frozen=True)
class AgentRow:
    id: str
    name: str
    sync: str
    health: str
    reason: str
    version: str | None  # what serves (the stable revision's version), None when missing
    desired_version: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def derive(snapshot: StateSnapshot, plan: Plan | None, held: Mapping[str, Held] | None = None) -> list[AgentRow]:
    """One row per agent of the plan (in its order), then the engine's agents it does not name."""
    held = held or {}
    live = {agent.id: agent for agent in snapshot.agents}
    changes = {change.id: change for change in plan.changes} if plan is not None else {}
    order = list(changes) + sorted(set(live) - set(changes))
    return [_row(name, live.get(name), changes.get(name), held.get(name), plan is not None) for name in order]


def _row(agent_id: str, agent: AgentState | None, change: AgentChange | None, held: Held | None,
         planned: bool) -> AgentRow:
    sync = UNKNOWN if not planned or change is None else (SYNCED if change.action == "no-op" else OUT_OF_SYNC)
    desired = change.version_after if change is not None else None
    if held is not None and change is not None and change.digest_after != held.digest:
        held = None  # the desired state moved on: that rollback no longer holds the agent
    health, reason = _health(agent, change, held)
    name = agent.name if agent is not None else (change.name if change is not None else agent_id)
    return AgentRow(agent_id, name, sync, health, reason, agent.version if agent is not None else None, desired)


def _health(agent: AgentState | None, change: AgentChange | None, held: Held | None) -> tuple[str, str]:
    if agent is None:
        if held is not None:
            return DEGRADED, f"{held.version or 'desired version'} failed: {held.reason}"
        if change is not None and change.action == "delete":
            return MISSING, "not on the engine"
        return MISSING, "not on the engine yet: the next apply creates it"
    if agent.rollout is None and held is not None:
        return DEGRADED, (f"rollout to {held.version or 'the desired version'} rolled back ({held.reason}); "
                          f"{agent.version} serves: commit a fix")
    return agent_health.live(agent)


def summary(rows: list[AgentRow]) -> dict[str, int]:
    """How many agents are in each health (for the loop's one-line state)."""
    out: dict[str, int] = {}
    for row in rows:
        out[row.health] = out.get(row.health, 0) + 1
    return out
