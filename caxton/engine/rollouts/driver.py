"""What the controller's helper modules use of it: ``recovery`` and ``supersede`` take a ``Driver``.

``caxton.engine.rollouts.controller.RolloutController`` satisfies it. The
helpers are the controller's own code split by concern, so the Protocol names
the (private) members they share with it; with it they import nothing of the
controller, and the controller imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from caxton.clock import Clock
    from caxton.engine.intake import Prepared
    from caxton.engine.operations import Operations
    from caxton.engine.rollouts.inflight import InFlight
    from caxton.engine.rollouts.model import Rollout
    from caxton.engine.rollouts.run import Listener, Run
    from caxton.engine.serving.router import Router
    from caxton.engine.serving.runtime import ServingRuntime
    from caxton.engine.state.records import Source
    from caxton.engine.state.store import Store
    from caxton.spec.agent import RolloutSpec


class Driver(Protocol):
    """The rollout controller as its helpers see it."""

    store: Store
    router: Router
    ops: Operations
    clock: Clock
    inflight: InFlight
    #: The runs in flight, by agent id (the ``InFlight`` book's).
    _runs: dict[str, Run]

    def start(
        self, prepared: Prepared, source: Source, *, strategy: str,
        apply_id: str | None = None, listener: Listener | None = None,
    ) -> dict[str, Any]: ...

    def wait(self, rollout_id: str, timeout: float | None = None) -> Rollout: ...

    def _make_run(self, rollout: Rollout, spec: RolloutSpec, stable: ServingRuntime,
                  candidate: ServingRuntime) -> Run: ...

    def _enter(self, run: Run, index: int) -> None: ...

    def _rollback(self, run: Run, reason: str, *, verdict_at: float | None = None, status: str = ...) -> None: ...
