"""Rollouts across replicas: the leader drives every rollout; the other replicas mirror and forward.

- ``adopt`` (the leader, at every change it sees): each rollout in flight in the store
  that this engine does not drive yet becomes one of its runs, resumed from its stored
  step through the recovery path (``caxton.engine.rollouts.recovery``), reusing the
  runtimes the follower already runs for it. This is how a new leader takes over after
  a failover, and how a rollout an apply started on another replica gets driven.
- ``act`` (the leader): the requests other replicas recorded (``forward``) are carried
  out: promote, abort, or abort as superseded; then forgotten.
- (the other side: ``caxton.engine.rollouts.forward``, a replica without the run records the request.)
- ``release`` (a leader that lost its connection): stop driving at once (each run
  handed off: its pins flushed); the routes stay as they are and the follower mirrors the new leader's steps from now on.
"""

from __future__ import annotations

import logging

from caxton.engine.rollouts import recovery
from caxton.engine.rollouts.controller import RolloutController
from caxton.engine.rollouts.model import SUPERSEDED, Rollout
from caxton.engine.state import rollouts as records
from caxton.engine.state.records import Source

log = logging.getLogger(__name__)

def adopt(controller: RolloutController, active: dict[str, Rollout]) -> list[str]:
    """Drive every rollout of ``active`` this engine does not drive yet; return their ids."""
    adopted: list[str] = []
    for agent, rollout in active.items():
        with controller.ops.lock:  # runs start and end under it: read again what it says now
            if agent in controller._runs:
                continue
            fresh = records.load(controller.store, rollout.id)
            if fresh is None or not fresh.active:  # it ended meanwhile (here or on the old leader)
                continue
            if recovery.recover_one(controller, fresh, why="taken over by this replica (the rollout leader)"):
                adopted.append(rollout.id)
    return adopted


def act(controller: RolloutController) -> None:
    """Carry out the requests of the other replicas about the rollouts this engine drives."""
    pending = records.requests(controller.store)
    if not pending:
        return
    runs = {run.rollout.id: run for run in list(controller._runs.values())}
    for rollout_id, body in pending.items():
        run = runs.get(rollout_id)
        if run is None:  # ended already (or not adopted yet: then it stays pending)
            found = records.load(controller.store, rollout_id)
            if found is None or not found.active:
                records.done(controller.store, rollout_id)
            continue
        source = Source(actor=body.get("actor"))
        try:
            action = body.get("action")
            if action == "promote":
                controller.promote(run.agent, source)
            elif action == "supersede":
                controller._rollback(run, str(body.get("reason") or "superseded"), status=SUPERSEDED)
            else:
                controller.abort(run.agent, source)
        except Exception:
            log.exception("rollout %s: the request %s of another replica failed", rollout_id, body)
        records.done(controller.store, rollout_id)


def release(controller: RolloutController) -> None:
    """Stop driving every rollout (leadership lost): their runtimes and routes stay; only pins are saved."""
    with controller.ops.lock:
        for run in list(controller._runs.values()):
            controller.hand_off(run)
    with controller.inflight.finished:
        controller.inflight.finished.notify_all()
