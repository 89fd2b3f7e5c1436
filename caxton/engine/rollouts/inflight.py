"""The rollouts in flight, by agent, and how one ends.

Built by the engine before ``Operations`` and the ``RolloutController``, and
given to both: to ``Operations`` as its ``ChangeGuard`` (``before_change``:
a deploy of an agent with a rollout in flight is refused; a suspend, resume
or remove cancels the rollout), to the controller as the book of its runs
(``runs``) and the one way a run ends (``finish``: persisted, counted,
logged, waiters woken). Every change of a run (``progress``) and every new
measurement (``measured``) goes to the engine's live event stream
(``caxton.engine.stream``) as an ``event: rollout`` frame with the rollout's
``view``, when a stream is open. It also keeps each agent's last rollout series
(``caxton.engine.rollouts.series``: the charts), in flight or ended.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from caxton import metrics
from caxton.engine.logs import AgentLogs
from caxton.engine.rollouts import views
from caxton.engine.rollouts.model import CANCELLED, SUCCEEDED, Rollout
from caxton.engine.rollouts.run import Run
from caxton.engine.rollouts.series import RolloutSeries
from caxton.engine.rollouts.window import WindowBook
from caxton.engine.serving.router import Router
from caxton.engine.serving.runtime import ServingRuntime
from caxton.engine.state import rollouts as records
from caxton.engine.state.records import utcnow
from caxton.engine.state.store import Store
from caxton.engine.stream import EventHub, Frame
from caxton.errors import Conflict
from caxton.spec.api import RolloutChange, StreamKind

log = logging.getLogger(__name__)


class InFlight:
    """Every rollout in flight of one engine (one run per agent at most)."""

    def __init__(self, store: Store, router: Router, windows: WindowBook, logs: AgentLogs,
                 hub: EventHub | None = None) -> None:
        self.store = store
        self.router = router
        self.windows = windows
        self.logs = logs
        self.hub = hub
        self.runs: dict[str, Run] = {}
        #: The rollouts in flight that another replica drives, by agent, as last read from the store
        #: (``caxton.engine.replica``; always empty on one engine).
        self.mirrored: dict[str, Rollout] = {}
        #: Each agent's last rollout's time series (``watch``), kept after it ends.
        self.series: dict[str, RolloutSeries] = {}
        #: Notified whenever a run ends (``RolloutController.wait``).
        self.finished = threading.Condition()

    def before_change(self, agent: str, operation: str) -> None:
        """Before ``Operations`` changes ``agent``: a deploy waits for its rollout; suspend/resume/remove cancel it."""
        run = self.runs.get(agent)
        if run is None:
            return
        if operation == "deploy":
            raise self.busy(run)
        self.close_mirror(run)
        route = self.router.get(agent)
        if route is None or run.candidate not in set(route.servings()):
            quiet_stop(run.candidate)
        done = {"suspend": "suspended", "resume": "resumed", "remove": "removed"}.get(operation, operation)
        self.finish(run, CANCELLED, f"the agent was {done} during the rollout")

    def watch(self, run: Run) -> None:
        """Start ``run``'s time series: its windows record into them from now on."""
        series = RolloutSeries.start(run.rollout.id, run.agent, self.router.clock)
        run.candidate_window.series = series.of(run.candidate.revision, "candidate")
        run.stable_window.series = series.of(run.stable.revision, "stable")
        self.series[run.agent] = series

    def series_view(self, agent: str) -> dict[str, Any] | None:
        """The time series of ``agent``'s last rollout (None: none since the engine started)."""
        series = self.series.get(agent)
        if series is None:
            return None
        run = self.runs.get(agent)
        live = run is not None and run.rollout.id == series.rollout_id
        return series.view(run.rollout.status if run is not None and live else series.status or "cancelled")

    def busy(self, run: Run) -> Conflict:
        return Conflict(
            f"agent {run.rollout.name!r} has a {run.rollout.strategy} rollout in progress ({run.rollout.id}, "
            f"step {run.rollout.step + 1}/{len(run.steps)})",
            hint=f"wait for it, or end it: `caxton rollout promote {run.agent}` / `caxton rollout abort {run.agent}`",
        )

    def finish(self, run: Run, status: str, reason: str) -> None:
        """End ``run`` with ``status``: persisted, counted, logged, out of the book; waiters woken."""
        rollout = run.rollout
        rollout.status, rollout.reason, rollout.finished_at = status, reason, utcnow()
        self.close_mirror(run)
        series = self.series.get(run.agent)
        if series is not None and series.rollout_id == rollout.id:
            series.end(status)
        run.pins.journal = None
        records.clear_pins(self.store, run.agent)
        self.windows.forget(run.candidate)
        self.windows.forget(run.stable)
        records.save(self.store, rollout)
        records.prune(self.store, run.agent)
        metrics.ROLLOUTS_FINISHED.labels(run.agent, status).inc()
        revision = run.candidate.revision if status == SUCCEEDED else run.stable.revision
        records.event(self.store, rollout, f"rollout_{status}",
                      f"{rollout.strategy} rollout {rollout.id} {status.replace('_', ' ')}: {reason}",
                      data={"reason": reason, "status": status, "stable_revision": run.stable.revision,
                            "candidate_revision": run.candidate.revision, "serving_revision": revision})
        self.logs.add(run.agent, "info" if status == SUCCEEDED else "warning",
                      f"rollout {rollout.id} {status}: {reason}", revision=revision)
        self.runs.pop(run.agent, None)
        self.progress(run, f"rollout {status.replace('_', ' ')}: {reason}; revision {revision} serves 100 %")
        with self.finished:
            self.finished.notify_all()

    def close_mirror(self, run: Run) -> None:
        if run.mirror is not None:
            run.mirror.close()
            run.mirror = None

    def progress(self, run: Run, message: str) -> None:
        for listener in list(run.listeners):
            try:
                listener(run.rollout.status, message)
            except Exception:
                log.exception("rollout progress listener failed")
        self.announce(run, RolloutChange.PROGRESS, message)

    def measured(self, run: Run, message: str) -> None:
        """New measurements were added to ``run``'s rollout."""
        self.announce(run, RolloutChange.MEASUREMENT, message)

    def announce(self, run: Run, change: RolloutChange, message: str) -> None:
        if self.hub is not None and self.hub.listening:
            self.hub.publish(self.frame(run.rollout, change, message))

    def frame(self, rollout: Rollout, change: RolloutChange, message: str) -> Frame:
        """``rollout`` as an ``event: rollout`` frame (``caxton.spec.api.RolloutProgress``)."""
        return Frame(StreamKind.ROLLOUT.value, rollout.agent_id,
                     {"agent": rollout.agent_id, "change": change.value, "message": message,
                      "rollout": self.view(rollout)})

    def view(self, rollout: Rollout) -> dict[str, Any]:
        """``rollout`` as the API shows it; with its live windows while it runs here."""
        body: dict[str, Any] = json.loads(json.dumps(rollout.to_dict(), default=str))
        run = self.runs.get(rollout.agent_id)
        if run is not None and run.rollout.id == rollout.id:
            now = self.router.clock.monotonic()
            body["live"] = {
                "step_elapsed_s": round(now - run.step_began, 3),
                "next_check_in_s": round(max(0.0, run.next_check - now), 3) if run.step.analyze else None,
                "candidate": views.window(run.candidate_window.snapshot()),
                "stable": views.window(run.stable_window.snapshot()),
                "stable_conversations": run.pins.on(run.stable.revision, idle=run.spec.interval, now=now),
            }
        return body


def quiet_stop(serving: ServingRuntime) -> None:
    try:
        serving.stop()
    except Exception as error:  # noqa: BLE001 - stopping must never fail an operation
        log.warning("stopping a runtime failed: %s", error)
