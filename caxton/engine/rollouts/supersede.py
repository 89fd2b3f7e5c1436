"""A new desired spec for an agent whose rollout is in flight (the Argo Rollouts rule), and its state.

``update`` is what ``RolloutController.update`` does for an apply: with no
rollout in flight it starts one; with one in flight the engine's own truth
decides (never the plan): the candidate's spec leaves the rollout alone, the
stable spec aborts it (100 % stable, the candidate drained), any other spec
aborts it back to stable and starts a new rollout from stable. Both endings
are recorded as ``superseded`` with the reason, so the apply that started the
old rollout reports its change as superseded, not failed or rolled back.
``state_of`` is the in-flight rollout as the state snapshot shows it.
With several replicas a rollout the leader drives is settled through it
(``caxton.engine.rollouts.forward``) and shown as this replica mirrors it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from caxton.engine.intake import Prepared
from caxton.engine.rollouts import forward
from caxton.engine.rollouts.model import PAUSED, SUPERSEDED, Rollout
from caxton.engine.rollouts.run import Listener, Run
from caxton.engine.state.records import Source
from caxton.errors import NotFound
from caxton.spec.state import RolloutState

if TYPE_CHECKING:
    from caxton.engine.rollouts.driver import Driver

#: The plan's strategy for "back to stable": with no rollout in flight it is an ordinary deploy.
ABORT = "abort"


def update(
    controller: Driver, prepared: Prepared, source: Source, *, strategy: str,
    apply_id: str | None, listener: Listener | None,
) -> dict[str, Any]:
    spec = prepared.spec
    by = f" (apply {apply_id})" if apply_id else ""
    elsewhere = forward.stored(controller, spec.id)
    if elsewhere is not None:  # driven by the rollout leader (another replica): settled there, then go on
        settled = _settle_elsewhere(controller, prepared, elsewhere, source, by)
        if settled is not None:
            return settled
    with controller.ops.lock:
        run = controller._runs.get(spec.id)
        if run is not None:
            digest = controller.ops.digest_of(spec, prepared.module)
            if digest == _digest(controller, run.agent, run.candidate.revision):
                return {"action": "unchanged", "agent": run.agent, "rollout": run.rollout.id,
                        "revision": run.stable.revision, "note": f"{describe(run)} already in progress: left as it is"}
            if digest == _digest(controller, run.agent, run.stable.revision):
                stable = _version(controller, run.agent, run.stable.revision)
                what = describe(run)
                controller._rollback(run, f"aborted: {stable} is desired{by}", status=SUPERSEDED)
                return {"action": "aborted", "agent": run.agent, "rollout": run.rollout.id,
                        "revision": run.stable.revision, "state": "serving",
                        "note": f"{what} aborted: revision {run.stable.revision} ({stable}) serves 100 %"}
            controller._rollback(run, f"superseded by {spec.version}{by}", status=SUPERSEDED)
        return controller.start(prepared, source, strategy="immediate" if strategy == ABORT else strategy,
                                apply_id=apply_id, listener=listener)


def _settle_elsewhere(controller: Driver, prepared: Prepared, rollout: Rollout, source: Source,
                      by: str) -> dict[str, Any] | None:
    """The Argo rule for a rollout another replica drives: None when it was superseded (start the new one)."""
    digest = controller.ops.digest_of(prepared.spec, prepared.module)
    if digest == _digest(controller, rollout.agent_id, rollout.candidate_revision):
        return {"action": "unchanged", "agent": rollout.agent_id, "rollout": rollout.id,
                "revision": rollout.stable_revision,
                "note": f"{rollout.strategy} rollout {rollout.id} to {rollout.candidate_version} already in "
                        "progress: left as it is"}
    if digest == _digest(controller, rollout.agent_id, rollout.stable_revision):
        stable = _version(controller, rollout.agent_id, rollout.stable_revision)
        forward.forward(controller, rollout, "supersede", source, f"aborted: {stable} is desired{by}")
        return {"action": "aborted", "agent": rollout.agent_id, "rollout": rollout.id,
                "revision": rollout.stable_revision, "state": "serving",
                "note": f"{rollout.strategy} rollout {rollout.id} aborted: revision {rollout.stable_revision} "
                        f"({stable}) serves 100 %"}
    forward.forward(controller, rollout, "supersede", source, f"superseded by {prepared.spec.version}{by}")
    return None


def state_of(controller: Driver, agent: str) -> RolloutState | None:
    run = controller._runs.get(agent)
    if run is None:
        mirrored = controller.inflight.mirrored.get(agent)
        return None if mirrored is None else _state_of_record(controller, mirrored)
    rollout = run.rollout
    return RolloutState(
        id=rollout.id, strategy=rollout.strategy, status=rollout.status, step=rollout.step + 1,
        steps=len(run.steps), reason=rollout.reason, stable_revision=run.stable.revision,
        stable_version=_version(controller, run.agent, run.stable.revision),
        candidate_revision=run.candidate.revision, candidate_version=rollout.candidate_version,
        candidate_digest=_digest(controller, run.agent, run.candidate.revision), apply_id=rollout.apply_id,
    )


def _state_of_record(controller: Driver, rollout: Rollout) -> RolloutState:
    """A rollout another replica drives, as this one mirrors it (``InFlight.mirrored``)."""
    return RolloutState(
        id=rollout.id, strategy=rollout.strategy, status=rollout.status, step=rollout.step + 1,
        steps=len(rollout.steps), reason=rollout.reason, stable_revision=rollout.stable_revision,
        stable_version=_version(controller, rollout.agent_id, rollout.stable_revision),
        candidate_revision=rollout.candidate_revision, candidate_version=rollout.candidate_version,
        candidate_digest=_digest(controller, rollout.agent_id, rollout.candidate_revision), apply_id=rollout.apply_id,
    )


def describe(run: Run) -> str:
    """``canary rollout 3f2a... to 1.1.0 (paused at step 1/3)``, for messages."""
    where = "paused at" if run.rollout.status == PAUSED else "at"
    return (f"{run.rollout.strategy} rollout {run.rollout.id} to {run.rollout.candidate_version} "
            f"({where} step {run.rollout.step + 1}/{len(run.steps)})")


def _digest(controller: Driver, agent: str, revision: int) -> str:
    try:
        return controller.store.revision(agent, revision).spec_digest
    except NotFound:
        return ""


def _version(controller: Driver, agent: str, revision: int) -> str:
    try:
        return controller.store.revision(agent, revision).version
    except NotFound:
        return f"revision {revision}"
