"""Recovery of rollouts after an engine restart (``RolloutController.recover``).

Each rollout the store still marks running or paused is resumed at its step
(the candidate revision started again, its conversation pins loaded, the
step's route set, the step's clock restarted), or, when its spec says
``resume: false`` or the candidate cannot start, rolled back: the stable
revision already serves 100 % (``Operations.recover`` started it).

``recover_one`` is also how the rollout leader of several replicas takes a rollout
over (``caxton.engine.replica.remote.adopt``): the runtimes the replica already runs
for the stable and candidate revisions (a mirrored route) are reused, not started twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caxton.engine.state import rollouts as records
from caxton.engine.rollouts.model import CANCELLED, PAUSED, ROLLED_BACK, Rollout
from caxton.engine.state.records import utcnow
from caxton.errors import CaxtonError
from caxton.spec.agent import RolloutSpec

if TYPE_CHECKING:
    from caxton.engine.rollouts.driver import Driver


def recover(controller: Driver) -> list[str]:
    """Resume (or roll back, with ``resume: false``) every rollout a restart cut short."""
    resumed: list[str] = []
    for rollout in records.active(controller.store):
        if recover_one(controller, rollout):
            resumed.append(rollout.id)
    return resumed


def recover_one(controller: Driver, rollout: Rollout, *, why: str = "resumed after a restart") -> bool:
    """Resume ``rollout`` at its stored step as a run of ``controller`` (or end it); True: resumed."""
    try:
        return _recover_one(controller, rollout, why)
    except CaxtonError as error:
        _abandon(controller, rollout, ROLLED_BACK, f"could not resume ({why}): {error.message}")
        return False


def _recover_one(controller: Driver, rollout: Rollout, why: str) -> bool:
    spec = RolloutSpec.model_validate(rollout.spec)
    route = controller.router.get(rollout.agent_id)
    stable = route.serving(rollout.stable_revision) if route is not None else None
    if route is None or stable is None or any(
            b.serving.revision not in (rollout.stable_revision, rollout.candidate_revision) for b in route.backends):
        _abandon(controller, rollout, CANCELLED, f"the agent was not serving its stable revision ({why})")
        return False
    if not spec.resume:
        _abandon(controller, rollout, ROLLED_BACK, f"the rollout was cut short ({why}) and rollout.resume is "
                 f"false: revision {rollout.stable_revision} serves 100 %")
        return False
    with controller.ops.lock:
        candidate = route.serving(rollout.candidate_revision)  # a replica's mirrored route already runs it
        if candidate is None:
            candidate = controller.ops.start_revision(rollout.agent_id, rollout.candidate_revision)
        run = controller._make_run(rollout, spec, stable, candidate)
        now = controller.clock.monotonic()
        for conversation, revision in records.load_pins(controller.store, rollout.agent_id).items():
            run.pins.pins[conversation] = [revision, now]
        run.pins.journal = []
        records.event(controller.store, rollout, "rollout_resumed",
                      f"{rollout.strategy} rollout {rollout.id} {why}: at step "
                      f"{rollout.step + 1}/{len(run.steps)} ({run.step.label})")
        paused = rollout.status == PAUSED
        controller._enter(run, rollout.step)
        if paused and run.rollout.active:
            run.rollout.status = PAUSED
            records.save(controller.store, run.rollout)
        if run.rollout.active:
            controller._runs[rollout.agent_id] = run
    return True


def _abandon(controller: Driver, rollout: Rollout, status: str, reason: str) -> None:
    """Finish a rollout that has no run (at recovery): the stable revision already serves."""
    rollout.status, rollout.reason, rollout.finished_at = status, reason, utcnow()
    records.clear_pins(controller.store, rollout.agent_id)
    records.save(controller.store, rollout)
    records.event(controller.store, rollout, f"rollout_{status}",
                  f"{rollout.strategy} rollout {rollout.id} {status.replace('_', ' ')}: {reason}",
                  revision=rollout.stable_revision, data={"reason": reason, "status": status})
