"""The rollout controller: starts, drives, promotes, rolls back and recovers rollouts.

``start`` (called by ``caxton.engine.applies`` for a change whose strategy
has steps) starts the candidate revision beside the serving one and enters
the first step; a background thread then ticks every ``TICK`` seconds:
it persists new conversation pins, checks the candidate's window (a breach
fails the step at once; a pass needs a full ``interval``), and moves to the
next step, promotes (100 % candidate, stable drained and stopped) or rolls
back (100 % stable, candidate drained and stopped, event with the reason).
``promote`` and ``abort`` are the operator's shortcuts (``caxton rollout``).
``update`` is what an apply calls for an agent's new spec: it follows the
Argo Rollouts rule when the agent already has a rollout in flight (the same
candidate: left alone; the stable spec: the rollout is aborted; anything
else: the rollout is aborted back to stable, ends ``superseded``, and a new
one starts from stable).
Every change is persisted (``records``), so ``recover`` at engine start
resumes each in-flight rollout at its step, or rolls it back when its spec
says ``resume: false``. All route changes hold ``Operations.lock``.
With several engines on one PostgreSQL store only the rollout leader drives
rollouts (``leads``, set by ``caxton.engine.replica``): a rollout started on
another replica is recorded and left to the leader, and ``promote``/``abort``
of a rollout this engine does not drive are forwarded (``forward``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from caxton import metrics
from caxton.clock import Clock
from caxton.engine.intake import Prepared
from caxton.engine.operations import Candidate, OperationResult, Operations
from caxton.engine.rollouts import (
    analysis,
    forward,
    preview,
    recovery,
    strategies,
    supersede,
    views,
)
from caxton.engine.state import rollouts as records
from caxton.engine.rollouts.model import (
    ACTIVE,
    PAUSED,
    ROLLED_BACK,
    RUNNING,
    SUCCEEDED,
    Measurement,
    Rollout,
)
from caxton.engine.rollouts.inflight import InFlight, quiet_stop
from caxton.engine.rollouts.run import Listener, Run, failure_reason
from caxton.engine.rollouts.shadow import ShadowMirror
from caxton.engine.rollouts.strategies import StepView
from caxton.engine.rollouts.window import WindowBook
from caxton.engine.serving.router import Backend, Route, Router
from caxton.engine.serving.runtime import ServingRuntime
from caxton.engine.state.records import Source, utcnow
from caxton.engine.state.store import Store
from caxton.errors import InvalidInput, NotFound, StoreUnavailable
from caxton.spec.agent import ConfigAgent, RolloutSpec
from caxton.spec.identity import agent_id
from caxton.spec.state import RolloutState

log = logging.getLogger(__name__)

#: Seconds between two ticks of the controller thread.
TICK = 0.02
#: Measurements kept per rollout (the newest).
KEEP_MEASUREMENTS = 200
PIN_SWEEP_EVERY = 30.0


class RolloutController:
    """Every rollout of one engine; steps, intervals and ticks are timed by the router's clock."""

    def __init__(self, store: Store, router: Router, ops: Operations, windows: WindowBook, inflight: InFlight) -> None:
        self.store = store
        self.router = router
        self.clock: Clock = router.clock  # one clock for the steps and the conversation pins
        self.ops = ops
        self.windows = windows
        #: The rollouts in flight, shared with ``ops`` (its ``ChangeGuard``): built before both.
        self.inflight = inflight
        self._runs = inflight.runs
        self._finished = inflight.finished
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retiring: list[threading.Thread] = []
        #: Whether this engine drives rollouts: always on one engine; the leader's only with replicas.
        self.leads: Callable[[], bool] = lambda: True

    # --- lifecycle ----------------------------------------------------------------------
    def run_in_background(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rollout-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking; rollouts stay persisted as they are and resume at the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        with self.ops.lock:
            for run in list(self._runs.values()):
                try:
                    self._flush(run)
                except StoreUnavailable as error:  # the engine stops anyway: only these pins' updates are lost
                    log.warning("rollout %s of %s: its conversation pins were not saved: %s", run.rollout.id,
                                run.agent, error.message)
                self.inflight.close_mirror(run)
                route = self.router.get(run.agent)
                if route is None or run.candidate not in set(route.servings()):
                    quiet_stop(run.candidate)
            self._runs.clear()
        for thread in self._retiring:
            thread.join(timeout=5.0)

    def active(self, agent: str) -> Rollout | None:
        run = self._runs.get(agent)
        return run.rollout if run else None

    def in_flight(self) -> list[Rollout]:
        """The rollouts in progress (for the scrape-time gauges)."""
        return [run.rollout for run in list(self._runs.values())]

    def state_of(self, agent: str) -> RolloutState | None:
        """The agent's in-flight rollout as the state snapshot shows it (None: no rollout)."""
        return supersede.state_of(self, agent)

    # --- start ------------------------------------------------------------------------------
    def update(
        self, prepared: Prepared, source: Source, *, strategy: str,
        apply_id: str | None = None, listener: Listener | None = None,
    ) -> dict[str, Any]:
        """An apply's new spec for an agent: a rollout, after settling the one in flight (``supersede``)."""
        return supersede.update(self, prepared, source, strategy=strategy, apply_id=apply_id, listener=listener)

    def start(
        self, prepared: Prepared, source: Source, *, strategy: str,
        apply_id: str | None = None, listener: Listener | None = None,
    ) -> dict[str, Any]:
        """Start a rollout of ``prepared`` (or deploy at once when there is nothing to roll out from)."""
        spec = prepared.spec
        steps = strategies.get(strategy).steps(spec.rollout)
        if not steps:
            return self.ops.deploy(prepared, source).to_dict()
        if isinstance(spec, ConfigAgent) and any(step.mirror for step in steps):
            raise InvalidInput(
                f"agent {spec.name!r}: the {strategy} strategy is for WASM agents",
                hint="a config agent's shadow copy would write its conversation history twice; use canary",
            )
        with self.ops.lock:
            if spec.id in self._runs:
                raise self.inflight.busy(self._runs[spec.id])
            started = self.ops.start_candidate(prepared, source)
            if started is None:
                result = self.ops.deploy(prepared, source).to_dict()
                return {**result, "note": "no serving revision to roll out from: deployed immediately"}
            if isinstance(started, OperationResult):
                return started.to_dict()
            run = self._new_run(started, strategy, source, apply_id)
            if listener is not None:
                run.listeners.append(listener)
            records.save_pins(self.store, run.agent, [(c, int(p[0])) for c, p in list(run.pins.pins.items())])
            run.pins.journal = []
            began = (f"{strategy} rollout {run.rollout.id} started: revision {started.number} "
                     f"({started.spec.version}) beside revision {run.stable.revision}: {run.describe_steps()}")
            records.event(self.store, run.rollout, "rollout_started", began)
            self.inflight.progress(run, began)
            self._enter(run, 0)
            if run.rollout.active and self.leads():
                self._runs[run.agent] = run  # from now on the controller thread ticks it
            elif run.rollout.active:
                self.hand_off(run)
        return {"action": "rollout", "agent": run.agent, "name": run.rollout.name, "rollout": run.rollout.id,
                "revision": started.number, "previous_revision": run.stable.revision,
                "strategy": strategy, "steps": run.describe_steps(), "state": started.stable.state}

    def hand_off(self, run: Run) -> None:
        """Stop driving ``run`` (not the leader): it is recorded; the leader adopts it and this engine's route
        follows the stored steps (``caxton.engine.replica``). Its runtimes and route stay."""
        self._runs.pop(run.agent, None)
        self.inflight.close_mirror(run)
        try:
            self._flush(run)
        except Exception:  # the store is unreachable: the pins noted since the last tick are lost, not the rollout
            log.exception("rollout %s: could not save its conversation pins while handing it off", run.rollout.id)
        run.pins.journal = None

    def _new_run(self, started: Candidate, strategy: str, source: Source, apply_id: str | None) -> Run:
        route = self.router.get(started.spec.id)
        assert route is not None and len(route.backends) == 1
        stable = route.backends[0].serving
        now = utcnow()
        rollout = Rollout(
            id=uuid.uuid4().hex[:12], agent_id=started.spec.id, name=started.spec.name, strategy=strategy,
            status=RUNNING, stable_revision=stable.revision, candidate_revision=started.number,
            candidate_version=started.spec.version, spec=started.spec.rollout.model_dump(mode="json"),
            started_at=now, updated_at=now, apply_id=apply_id, actor=source.actor, plan_id=source.plan_id,
            git_commit=source.git_commit,
        )
        return self._make_run(rollout, started.spec.rollout, stable, started.serving)

    def _make_run(self, rollout: Rollout, spec: RolloutSpec, stable: ServingRuntime, candidate: ServingRuntime) -> Run:
        strategy = strategies.get(rollout.strategy)
        steps = strategy.steps(spec)
        rollout.steps = [step.label for step in steps]
        now = self.clock.monotonic()
        run = Run(rollout=rollout, spec=spec, strategy=strategy, steps=steps, stable=stable, candidate=candidate,
                  candidate_window=self.windows.watch(candidate), stable_window=self.windows.watch(stable),
                  pins=self.router.pins(rollout.agent_id), step_began=now, checkpoint_began=now, last_sweep=now)
        self.inflight.watch(run)
        return run

    # --- steps ------------------------------------------------------------------------------
    def _enter(self, run: Run, index: int) -> None:
        """Begin step ``index``: preview checks, route, fresh windows, persisted."""
        with self.ops.lock:
            run.rollout.step = index
            step = run.step
            if step.checks and not self._preview(run):
                return
            if step.mirror and run.mirror is None:
                run.mirror = ShadowMirror(run.candidate, run.candidate_window)
            self._set_route(run, run.route(step))
            run.candidate_window.clear()
            run.stable_window.clear()
            now = self.clock.monotonic()
            run.step_began = run.checkpoint_began = now
            run.next_check = now + run.spec.interval
            run.rollout.step_started_at = utcnow()
            records.save(self.store, run.rollout)
            self.inflight.progress(run, f"step {index + 1}/{len(run.steps)}: {step.label} "
                           f"(traffic {views.traffic(run.rollout.weights)})")

    def _set_route(self, run: Run, route: Route) -> None:
        self._flush(run)  # pins first: a restart must see every conversation placed under the old weights
        self.router.set(route)
        run.rollout.weights = route.traffic()
        if route.mirror is not None:
            run.rollout.weights = {**run.rollout.weights, f"{run.candidate.revision} (shadow)": 0}

    def _preview(self, run: Run) -> bool:
        """Send the blue-green preview checks to the candidate; roll back on the first failure."""
        for number, check in enumerate(run.spec.preview_checks, 1):
            problem = preview.check(run.candidate, check.message, check.expect_contains)
            if problem is not None:
                self._rollback(run, f"preview check {number} failed on revision {run.candidate.revision}: {problem}")
                return False
        if run.spec.preview_checks:
            self.inflight.progress(run, f"{len(run.spec.preview_checks)} preview check(s) passed on revision "
                           f"{run.candidate.revision}")
        return True

    # --- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.clock.wait(self._stop, TICK):
            if not self.leads():  # a replica that lost the leadership (its runs are being released)
                continue
            for run in list(self._runs.values()):
                try:
                    self.tick(run)
                except StoreUnavailable as error:  # retried at the next tick; the outage is logged once
                    log.debug("rollout %s of %s: tick deferred: %s", run.rollout.id, run.agent, error.message)
                except Exception:
                    log.exception("rollout %s of %s: tick failed", run.rollout.id, run.agent)

    def tick(self, run: Run) -> None:
        """One observation of ``run``: pins, analysis, step completion."""
        now = self.clock.monotonic()
        self._flush(run)
        if now - run.last_sweep > PIN_SWEEP_EVERY:
            run.last_sweep = now
            run.pins.sweep(now)
        if run.rollout.status not in ACTIVE or run.held:
            return
        if run.step.analyze:
            self._analyze(run, now)
            return
        view = StepView(elapsed=now - run.step_began,
                        stable_conversations=run.pins.on(run.stable.revision, idle=run.spec.interval, now=now))
        if run.strategy.complete(run.spec, run.step, view):
            self._advance(run)

    def _analyze(self, run: Run, now: float) -> None:
        full = now >= run.next_check
        verdict, found = analysis.evaluate(run.subject(), quick=not full)
        if full or verdict == "fail":
            metrics.ROLLOUT_VERDICTS.labels(run.agent, verdict).inc()
        if not full:
            if verdict == "fail":
                self._record(run, found)
                self._failed(run, found)
            return
        self._record(run, found)
        outcome = self._no_data(run, found, now) if verdict == "no_data" else verdict
        if outcome == "fail":
            self._failed(run, found)
        elif outcome == "pass":
            self._passed(run, now)

    def _no_data(self, run: Run, found: list[Measurement], now: float) -> str:
        policy = run.spec.analysis.on_no_data
        if policy == "fail":
            self._rollback(run, failure_reason(run, found, no_data=True))
            return "handled"
        if policy == "pass":
            self.inflight.progress(run, "no data for the analysis; analysis.on_no_data is pass: the step counts as passed")
            return "pass"
        run.next_check = now + run.spec.interval
        if run.rollout.status != PAUSED:
            with self.ops.lock:
                run.rollout.status = PAUSED
                run.rollout.reason = "inconclusive: " + "; ".join(
                    f"{m.metric}: {m.detail}" for m in found if m.verdict == "no_data")
                records.save(self.store, run.rollout)
            self.inflight.progress(run, f"paused: {run.rollout.reason} (analysis.on_no_data is pause; it goes on when "
                           f"enough traffic arrives, or `caxton rollout promote|abort {run.agent}`)")
        return "handled"

    def _passed(self, run: Run, now: float) -> None:
        if run.rollout.status == PAUSED:
            run.rollout.status, run.rollout.reason = RUNNING, ""
            self.inflight.progress(run, "enough data again: resumed")
        run.candidate_window.clear()
        run.stable_window.clear()
        run.checkpoint_began, run.next_check = now, now + run.spec.interval
        records.save(self.store, run.rollout)
        duration = run.step.duration
        if duration is not None and now - run.step_began >= duration - 1e-6:
            self.inflight.progress(run, f"step {run.rollout.step + 1}/{len(run.steps)} ({run.step.label}) passed: "
                           + views.summary(run.rollout.measurements, run.rollout.step))
            self._advance(run)

    def _failed(self, run: Run, found: list[Measurement]) -> None:
        reason = failure_reason(run, found)
        if run.spec.auto_rollback:
            self._rollback(run, reason, verdict_at=time.perf_counter())
            return
        with self.ops.lock:
            run.held = True
            run.rollout.status, run.rollout.reason = PAUSED, reason + "; auto_rollback is off"
            records.save(self.store, run.rollout)
        self.inflight.progress(run, f"paused: {run.rollout.reason}: `caxton rollout promote|abort {run.agent}`")

    def _advance(self, run: Run) -> None:
        if run.rollout.step + 1 < len(run.steps):
            self._enter(run, run.rollout.step + 1)
        else:
            self._promote(run, "every step passed")

    def _record(self, run: Run, found: list[Measurement]) -> None:
        run.rollout.measurements.extend(m.to_dict() for m in found)
        del run.rollout.measurements[:-KEEP_MEASUREMENTS]
        if found:
            self.inflight.measured(run, f"step {run.rollout.step + 1}/{len(run.steps)}: "
                                   + views.summary(run.rollout.measurements, run.rollout.step))

    # --- outcomes -----------------------------------------------------------------------------
    def _promote(self, run: Run, why: str, source: Source | None = None) -> None:
        with self.ops.lock:
            if run.rollout.status not in ACTIVE:
                return
            self._set_route(run, Route(run.agent, (Backend(run.candidate, 100),)))
            source = source or Source(actor=f"rollout {run.rollout.id}", plan_id=run.rollout.plan_id,
                                      git_commit=run.rollout.git_commit)
            self.ops.promote(run.agent, run.candidate.revision, source,
                             message=f"revision {run.candidate.revision} ({run.rollout.candidate_version}) serving "
                             f"after {run.rollout.strategy} rollout {run.rollout.id}: {why}")
            self.inflight.finish(run, SUCCEEDED, why)
        self._retire_later(run.stable, run.spec.drain_timeout)

    def _rollback(self, run: Run, reason: str, *, verdict_at: float | None = None, status: str = ROLLED_BACK) -> None:
        """100 % to the stable revision (conversations on the candidate go on there); the candidate drains."""
        with self.ops.lock:
            if run.rollout.status not in ACTIVE:
                return
            began = verdict_at if verdict_at is not None else time.perf_counter()
            route = Route(run.agent, (Backend(run.stable, 100),))
            self.router.set(route)  # first: every new message goes to the stable revision from now on
            run.rollout.weights = route.traffic()
            run.rollout.timings = {"verdict_to_stable_ms": round((time.perf_counter() - began) * 1000, 3)}
            self.inflight.finish(run, status, reason)
        self._retire_later(run.candidate, run.spec.drain_timeout)

    def _retire_later(self, serving: ServingRuntime, timeout: float) -> None:
        thread = threading.Thread(target=self.ops.retire_serving, args=(serving, timeout),
                                  name=f"retire-{serving.agent_id}-{serving.revision}", daemon=True)
        self._retiring = [t for t in self._retiring if t.is_alive()] + [thread]
        thread.start()

    def _flush(self, run: Run) -> None:
        records.save_pins(self.store, run.agent, run.pins.take_journal())

    # --- operator commands ---------------------------------------------------------------------
    def promote(self, name: str, source: Source) -> dict[str, Any]:
        """Skip the remaining steps: 100 % to the candidate now."""
        elsewhere = forward.stored(self, agent_id(name))
        if elsewhere is not None:
            return self.view(forward.forward(self, elsewhere, "promote", source))
        run = self._require(name)
        self._promote(run, f"promoted by {source.actor or 'an operator'}", source)
        return self.view(run.rollout)

    def abort(self, name: str, source: Source) -> dict[str, Any]:
        """Roll back now: 100 % to the stable revision."""
        elsewhere = forward.stored(self, agent_id(name))
        if elsewhere is not None:
            return self.view(forward.forward(self, elsewhere, "abort", source))
        run = self._require(name)
        self._rollback(run, f"aborted by {source.actor or 'an operator'}")
        return self.view(run.rollout)

    def _require(self, name: str) -> Run:
        run = self._runs.get(agent_id(name))
        if run is None:
            raise NotFound(f"agent {name!r} has no rollout in progress",
                           hint="see `caxton rollout status` for the rollouts of every agent")
        return run

    # --- reads --------------------------------------------------------------------------------
    def wait(self, rollout_id: str, timeout: float | None = None) -> Rollout:
        """Block until rollout ``rollout_id`` is no longer active (or ``timeout``); return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._finished:
            while self._active({rollout_id}) and not self._stop.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._finished.wait(min(remaining, 1.0) if remaining is not None else 1.0)
        found = records.load(self.store, rollout_id)
        if found is None:
            raise NotFound(f"no rollout {rollout_id!r}")
        return found

    def wait_any(self, rollout_ids: set[str]) -> set[str]:
        """Block until some of ``rollout_ids`` are no longer active; return those (empty: the controller stopped)."""
        with self._finished:
            while not self._stop.is_set():
                ended = rollout_ids - self._active(rollout_ids)
                if ended:
                    return ended
                self._finished.wait(1.0)
        return set()

    def _active(self, rollout_ids: set[str]) -> set[str]:
        """Which of ``rollout_ids`` are in flight: driven here, or (replicas) by the leader, as stored."""
        here = {run.rollout.id for run in list(self._runs.values())} & rollout_ids
        elsewhere = rollout_ids - here
        if elsewhere:
            here |= {rollout_id for rollout_id in elsewhere
                     if (found := records.load(self.store, rollout_id)) is not None and found.active}
        return here

    def status(self, name: str | None = None, limit: int = 10) -> dict[str, Any]:
        """Active rollouts (live) and recent ones, of one agent or of all."""
        ident = agent_id(name) if name else None
        if ident is not None and self.store.agent(ident) is None and not records.recent(self.store, ident, 1):
            raise self.store.unknown_agent(name or "")
        shown = records.recent(self.store, ident, limit)
        live = {run.rollout.id: run.rollout for run in self._runs.values()}
        return {"rollouts": [self.view(live.get(r.id, r)) for r in shown]}

    def view(self, rollout: Rollout) -> dict[str, Any]:
        return self.inflight.view(rollout)

    # --- recovery -------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Resume (or roll back, with ``resume: false``) every rollout a restart cut short."""
        return recovery.recover(self)
