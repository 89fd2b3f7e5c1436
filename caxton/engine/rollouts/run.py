"""One rollout in progress: its record, strategy steps, the two runtimes and their windows.

The controller (``caxton.engine.rollouts.controller``) keeps one ``Run`` per
agent with an active rollout and drives it step by step. This module holds
the pure parts: which route a step means, the analysis subject, and the
words used in progress lines and failure reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from caxton.engine.rollouts import analysis
from caxton.engine.rollouts.model import Measurement, Rollout, Step
from caxton.engine.rollouts.shadow import ShadowMirror
from caxton.engine.rollouts.strategies import Strategy
from caxton.engine.rollouts.window import Window
from caxton.engine.serving.router import Backend, ConversationPins, Route
from caxton.engine.serving.runtime import ServingRuntime
from caxton.engine.state.records import utcnow
from caxton.spec.agent import RolloutSpec

#: A progress listener gets (status, message); the apply that started the rollout is one.
Listener = Callable[[str, str], None]


@dataclass
class Run:
    rollout: Rollout
    spec: RolloutSpec
    strategy: Strategy
    steps: tuple[Step, ...]
    stable: ServingRuntime
    candidate: ServingRuntime
    candidate_window: Window
    stable_window: Window
    pins: ConversationPins
    #: Times are monotonic seconds of the controller's clock (``caxton.clock``).
    step_began: float
    checkpoint_began: float
    last_sweep: float
    next_check: float = float("inf")
    held: bool = False
    mirror: ShadowMirror | None = None
    listeners: list[Listener] = field(default_factory=list)

    @property
    def agent(self) -> str:
        return self.rollout.agent_id

    @property
    def step(self) -> Step:
        return self.steps[self.rollout.step]

    def route(self, step: Step) -> Route:
        """The route of ``step``: candidate first (low hash points), stable second, optional mirror."""
        backends: list[Backend] = []
        if step.weight > 0 or step.sticky:
            backends.append(Backend(self.candidate, step.weight))
        if step.weight < 100 or step.sticky:
            backends.append(Backend(self.stable, 100 - step.weight))
        mirror = self.mirror if step.mirror else None
        return Route(self.agent, tuple(backends), sticky=step.sticky and len(backends) > 1, mirror=mirror)

    def subject(self) -> analysis.Subject:
        return analysis.Subject(
            agent_id=self.agent, revision=self.candidate.revision, stable_revision=self.stable.revision,
            step=self.rollout.step, candidate=self.candidate_window.snapshot(),
            stable=self.stable_window.snapshot(), analysis=self.spec.analysis, interval=self.spec.interval,
            at=utcnow(), shadow=self.step.mirror,
        )

    def describe_steps(self) -> str:
        return " -> ".join(step.label for step in self.steps)


def failure_reason(run: Run, found: Sequence[Measurement], *, no_data: bool = False) -> str:
    """Which metric failed and by how much, in one line."""
    step = f"step {run.rollout.step + 1}/{len(run.steps)} ({run.step.label})"
    if no_data:
        missing = [m for m in found if m.verdict == "no_data"]
        details = "; ".join(f"{m.metric}: {m.detail}" for m in missing) or "no measurement"
        return f"no data at {step} and analysis.on_no_data is fail: {details}"
    failed = [m for m in found if m.verdict == "fail"]
    parts = [f"{m.metric} {_num(m.value)} {_negate(m.comparison)} {_num(m.threshold)} on revision {m.revision} "
             f"({m.requests} requests)" for m in failed]
    return f"analysis failed at {step}: " + "; ".join(parts)


def _negate(comparison: str) -> str:
    return {"<=": ">", "<": ">=", ">=": "<", ">": "<="}.get(comparison, "!" + comparison)


def _num(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:.4g}"
