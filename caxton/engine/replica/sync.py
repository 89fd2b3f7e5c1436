"""Reconcile this engine's runtimes to the store: what another replica changed, this one serves.

``reconcile`` compares, per agent, the revisions and weights the store says should
serve with the route this engine has, and changes only what differs (cheap when
nothing changed: revisions are compared, never specs):

- an agent serving at a revision this engine does not run: that revision is started,
  the route swapped to it, and the old runtimes drained and stopped in the background;
- an agent with a rollout in flight that another replica drives: the route mirrors the
  rollout's stored step (stable and candidate revisions at the stored weights, sticky
  when the step is), so traffic splits the same way on every replica;
- an agent no longer serving (suspended, failed, removed): its route is removed and
  its runtimes drained;
- an agent whose rollout this engine drives (``RolloutController``'s runs): left alone.

A revision that cannot start here is logged and retried at the next change. Its own
writes cost nothing more: the routes already match. Runs under ``Operations.lock``.
"""

from __future__ import annotations

import logging
import threading

from caxton.engine import states
from caxton.engine.operations import Operations
from caxton.engine.rollouts import strategies
from caxton.engine.rollouts.model import Rollout
from caxton.engine.serving.router import Backend, Route
from caxton.engine.serving.runtime import ServingRuntime
from caxton.engine.state.records import AgentRow
from caxton.errors import CaxtonError
from caxton.spec.agent import RolloutSpec

log = logging.getLogger(__name__)


def reconcile(ops: Operations, active: dict[str, Rollout], driven: set[str]) -> list[str]:
    """Make the routes of every agent not in ``driven`` match the store; return the agents changed.

    ``active``: the rollouts in flight, by agent (read from the store); ``driven``: the agents
    whose rollout this engine's controller drives.
    """
    changed: list[str] = []
    with ops.lock:
        rows = {row.id: row for row in ops.store.agents()}
        for ident, row in rows.items():
            if ident in driven or not states.is_serving(row.kind, row.state) or row.revision is None:
                continue
            target, sticky = _target(row, active.get(ident))
            route = ops.router.get(ident)
            if route is not None and route.traffic() == {str(rev): weight for rev, weight in target}:
                continue
            try:
                _route(ops, ident, target, sticky)
            except CaxtonError as error:
                log.warning("replica: cannot serve %s as the store says (%s); retrying at the next change",
                            ident, error.message)
                continue
            changed.append(ident)
        for ident in ops.router.ids():
            stored = rows.get(ident)
            if ident not in driven and (stored is None or not states.is_serving(stored.kind, stored.state)):
                old = ops.router.remove(ident)
                if old is not None:
                    _retire(ops, list(old.servings()))
                changed.append(ident)
    return changed


def _target(row: AgentRow, rollout: Rollout | None) -> tuple[list[tuple[int, int]], bool]:
    """The (revision, weight) pairs that should serve ``row``, and whether conversations stick."""
    assert row.revision is not None
    if rollout is None or rollout.stable_revision != row.revision:
        return [(row.revision, 100)], False
    weights = [(int(key), int(weight)) for key, weight in rollout.weights.items() if key.isdigit()]
    if sum(weight for _, weight in weights) != 100:  # not routed yet (the step is being entered)
        return [(row.revision, 100)], False
    steps = strategies.get(rollout.strategy).steps(RolloutSpec.model_validate(rollout.spec))
    sticky = steps[rollout.step].sticky if 0 <= rollout.step < len(steps) else True
    return weights, sticky and len(weights) > 1


def _route(ops: Operations, ident: str, target: list[tuple[int, int]], sticky: bool) -> None:
    route = ops.router.get(ident)
    have = {serving.revision: serving for serving in route.servings()} if route is not None else {}
    started: list[ServingRuntime] = []
    backends: list[Backend] = []
    try:
        for revision, weight in target:
            serving = have.get(revision)
            if serving is None:
                serving = ops.start_revision(ident, revision)
                started.append(serving)
                ops.context.logs.add(ident, "info", f"revision {revision} started here: another replica changed "
                                     "the agent", revision=revision)
            backends.append(Backend(serving, weight))
    except CaxtonError:
        _retire(ops, started)
        raise
    ops.router.set(Route(ident, tuple(backends), sticky=sticky))
    kept = {backend.serving for backend in backends}
    _retire(ops, [serving for serving in have.values() if serving not in kept])


def _retire(ops: Operations, servings: list[ServingRuntime]) -> None:
    """Drain and stop runtimes that no longer get traffic, without holding up the follower."""
    for serving in servings:
        threading.Thread(target=ops.retire_serving, args=(serving, ops.settings.drain_timeout),
                         name=f"replica-retire-{serving.agent_id}-{serving.revision}", daemon=True).start()
