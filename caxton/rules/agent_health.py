"""An agent's HEALTH from its live state alone (Argo CD style), and the words for a rollout in flight.

``live`` answers ``Progressing`` (a rollout running, or not serving yet),
``Paused`` (a rollout waiting for data or for a human), ``Degraded`` (failed),
``Suspended`` or ``Healthy``, with the reason to show. The toolchain adds what
only a plan knows (``Missing``, held rollbacks: ``caxton.reconcile.health``);
the engine's console (``caxton.engine.ui``) shows ``live`` as it is. Pure.
"""

from __future__ import annotations

from caxton.spec.state import SERVING_STATE, AgentState, RolloutState

HEALTHY, PROGRESSING, PAUSED, DEGRADED, SUSPENDED, MISSING = (
    "Healthy", "Progressing", "Paused", "Degraded", "Suspended", "Missing")


def live(agent: AgentState) -> tuple[str, str]:
    """The agent's health now and why (empty when ``Healthy``)."""
    rollout = agent.rollout
    if rollout is not None and rollout.status == "paused":
        return PAUSED, f"{describe_rollout(rollout)}: `caxton rollout promote {agent.name}`"
    if rollout is not None:
        return PROGRESSING, describe_rollout(rollout)
    if agent.state == "Failed":
        return DEGRADED, f"{agent.kind} agent failed (state Failed)"
    if agent.state == "Suspended":
        return SUSPENDED, "suspended: messages are refused until resumed"
    if agent.state != SERVING_STATE.get(agent.kind, agent.state):
        return PROGRESSING, f"state {agent.state}"
    return HEALTHY, ""


def describe_rollout(rollout: RolloutState) -> str:
    """``rollout to 1.1.0 paused at step 1/3 (no data)`` / ``rollout to 1.1.0 at step 2/3``."""
    if rollout.status != "paused":
        return f"rollout to {rollout.candidate_version} at step {rollout.step}/{rollout.steps}"
    inconclusive = rollout.reason.startswith("inconclusive") or "no data" in rollout.reason
    why = "no data" if inconclusive else rollout.reason.split(":")[0].strip()
    return (f"rollout to {rollout.candidate_version} paused at step {rollout.step}/{rollout.steps}"
            + (f" ({why})" if why else ""))
