"""Rollout strategies: one Protocol, one registry dict.

A strategy turns an agent's ``rollout:`` spec into a sequence of ``Step``
(traffic share of the candidate, stickiness, mirroring, analysis, duration)
and says when a step without a fixed duration is complete. The controller
(``caxton.engine.rollouts.controller``) runs the steps the same way for
every strategy: route, observe, analyse, then promote or roll back. The
seeds' WASM hot-reload names are entries of the same registry: ``graceful``
is ``immediate`` (the engine's swap drains the old revision), ``traffic-splitting``
is ``canary``, ``parallel`` is ``shadow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from caxton.engine.rollouts.model import Step
from caxton.spec.agent import RolloutSpec


@dataclass(frozen=True)
class StepView:
    """What a strategy may look at to decide that a step is complete."""

    elapsed: float
    #: Conversations on the stable revision that sent a message within the last ``interval``.
    stable_conversations: int


class Strategy(Protocol):
    def steps(self, spec: RolloutSpec) -> tuple[Step, ...]:
        """The steps of a rollout; empty: swap immediately (no rollout to run)."""
        ...

    def complete(self, spec: RolloutSpec, step: Step, view: StepView) -> bool:
        """True once ``step`` has run its course (its analysis is checked separately)."""
        ...


class _Timed:
    def complete(self, spec: RolloutSpec, step: Step, view: StepView) -> bool:
        return step.duration is not None and view.elapsed >= step.duration


class Immediate(_Timed):
    """Start the new revision, swap all traffic at once, drain the old one."""

    def steps(self, spec: RolloutSpec) -> tuple[Step, ...]:
        return ()


class Canary(_Timed):
    """Each of ``steps`` sends that share of new conversations to the candidate for one ``interval``."""

    def steps(self, spec: RolloutSpec) -> tuple[Step, ...]:
        return tuple(Step(f"{share} %", weight=share, duration=spec.interval) for share in spec.steps)


class Gradual:
    """New conversations go to the candidate; the stable revision serves its open ones until they end."""

    def steps(self, spec: RolloutSpec) -> tuple[Step, ...]:
        return (Step("new conversations on the new revision", weight=100, analyze=False),)

    def complete(self, spec: RolloutSpec, step: Step, view: StepView) -> bool:
        return view.stable_conversations == 0 or view.elapsed >= spec.drain_timeout


class BlueGreen(_Timed):
    """Start the candidate beside the stable revision, run the preview checks, switch all traffic at once."""

    def steps(self, spec: RolloutSpec) -> tuple[Step, ...]:
        return (Step("preview", weight=0, sticky=False, analyze=False, checks=True, duration=0.0),)


class ABTest(_Timed):
    """Split traffic at ``split`` for ``duration`` (or until promoted or aborted), analysing every interval."""

    def steps(self, spec: RolloutSpec) -> tuple[Step, ...]:
        stable, candidate = _split(spec.split)
        return (Step(f"split {stable}/{candidate}", weight=candidate, duration=spec.duration),)


class Shadow(_Timed):
    """The candidate gets a copy of every message; its replies are compared with the stable one's and discarded."""

    def steps(self, spec: RolloutSpec) -> tuple[Step, ...]:
        return (Step("shadow", weight=0, sticky=False, mirror=True, duration=spec.duration or spec.interval),)


def _split(split: str | None) -> tuple[int, int]:
    if not split:
        return 50, 50
    first, _, second = split.partition("/")
    return int(first), int(second)


#: Strategy name (``rollout.strategy``) -> strategy.
STRATEGIES: dict[str, Strategy] = {
    "immediate": Immediate(),
    "graceful": Immediate(),
    "gradual": Gradual(),
    "canary": Canary(),
    "traffic-splitting": Canary(),
    "blue-green": BlueGreen(),
    "ab-test": ABTest(),
    "shadow": Shadow(),
    "parallel": Shadow(),
}


def get(name: str) -> Strategy:
    """The strategy called ``name``; strategies apply does not run itself ('resume', 'drain') are immediate."""
    return STRATEGIES.get(name) or STRATEGIES["immediate"]
