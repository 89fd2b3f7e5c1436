"""What the loop remembers about one engine between passes: applies in flight, and rolled-back versions.

The loop submits an apply and goes on watching (it never follows rollouts);
``Tracker.settle`` looks at the applies it submitted that were still
progressing, and each change that ended rolled back becomes a ``Held``
agent: its desired version is not submitted again (``hold``) until the
agent's desired state changes (a new commit to it), and ``caxton reconcile
status`` shows it Degraded with the reason. Memory only: a restarted loop
may retry a rolled-back version once. Called by ``caxton.reconcile.passes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from caxton.client import applies
from caxton.client.transport import EngineClient
from caxton.errors import CaxtonError, NotFound
from caxton.reconcile.health import Held
from caxton.spec.api import FINAL, ChangeResult, ChangeStatus
from caxton.spec.plan import Plan


@dataclass(frozen=True)
class Submitted:
    apply_id: str
    #: agent id -> (desired digest, desired version) of each change the apply carries
    agents: dict[str, tuple[str | None, str | None]]


@dataclass
class Tracker:
    submitted: dict[str, Submitted] = field(default_factory=dict)
    held: dict[str, Held] = field(default_factory=dict)

    def record(self, apply_id: str, plan: Plan, status: str, results: list[ChangeResult]) -> None:
        """An apply was accepted: watch it until it ends (or take in its results if it already has)."""
        submitted = Submitted(apply_id, {c.id: (c.digest_after, c.version_after) for c in plan.actionable()})
        if status in FINAL:
            self._ended(submitted, results)
        else:
            self.submitted[apply_id] = submitted

    @property
    def in_flight(self) -> bool:
        return bool(self.submitted)

    def settle(self, client: EngineClient) -> None:
        """Read every apply still in flight; take in the ones that ended."""
        for apply_id, submitted in list(self.submitted.items()):
            try:
                view = applies.get(client, apply_id)
            except NotFound:  # the engine forgot it (restart, old record): nothing to learn
                del self.submitted[apply_id]
                continue
            except CaxtonError:
                return  # unreachable: try again on the next pass
            if view.status in FINAL:
                del self.submitted[apply_id]
                self._ended(submitted, view.results)

    def _ended(self, submitted: Submitted, results: list[ChangeResult]) -> None:
        for result in results:
            agent = result.id
            if result.status != ChangeStatus.ROLLED_BACK or agent not in submitted.agents:
                continue
            digest, version = submitted.agents[agent]
            if digest is not None:
                self.held[agent] = Held(digest, version, result.message or "rolled back", submitted.apply_id)

    def hold(self, plan: Plan) -> tuple[Plan, list[str]]:
        """``plan`` without the changes that would retry a rolled-back version; the agents held back.

        A held agent whose desired state changed (another digest, or nothing to do) is released.
        """
        kept, held = [], []
        for change in plan.changes:
            hold = self.held.get(change.id)
            if hold is not None and (change.action == "no-op" or change.digest_after != hold.digest):
                del self.held[change.id]
                hold = None
            if hold is not None and change.action != "no-op":
                held.append(change.id)
                change = change.model_copy(update={"action": "no-op", "reason": f"held: {hold.reason}"})
            kept.append(change)
        for gone in set(self.held) - {c.id for c in plan.changes}:
            del self.held[gone]
        return plan.model_copy(update={"changes": kept}), held
