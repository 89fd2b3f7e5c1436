"""A rollout command on a replica that does not drive the rollout (several engines on PostgreSQL).

Only the rollout leader drives rollouts (``caxton.engine.replica``). When
``caxton rollout promote|abort`` (or an apply that supersedes a rollout) reaches
another replica, ``forward`` records the request in the store
(``caxton.engine.state.rollouts.request``), and waits until the leader has
carried it out (it ends the rollout) and returns the rollout's record; after
``FORWARD_TIMEOUT`` s without a leader acting, ``Unavailable``. ``stored`` finds
the rollout in flight the store holds for an agent this engine has no run of.
On the embedded store every rollout is driven by its one engine: neither applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caxton.engine.state import rollouts as records
from caxton.engine.state.records import Source
from caxton.errors import Unavailable

if TYPE_CHECKING:
    from caxton.engine.rollouts.driver import Driver
    from caxton.engine.rollouts.model import Rollout

#: Seconds a forwarded promote/abort waits for the leader to carry it out.
FORWARD_TIMEOUT = 15.0


def stored(controller: Driver, agent: str) -> Rollout | None:
    """``agent``'s rollout in flight as the store has it, when this engine does not drive it."""
    if agent in controller._runs or controller.store.dialect != "postgres":  # embedded: one engine drives all
        return None
    found = [rollout for rollout in records.active(controller.store) if rollout.agent_id == agent]
    return found[0] if found else None


def forward(controller: Driver, rollout: Rollout, action: str, source: Source, reason: str = "") -> Rollout:
    """Ask the leader to ``action`` ("promote", "abort", "supersede") ``rollout``; wait until it ended."""
    records.request(controller.store, rollout.id, action, source.actor, reason)
    ended = controller.wait(rollout.id, FORWARD_TIMEOUT)
    if ended.active:
        raise Unavailable(f"the {action} of rollout {rollout.id} was recorded, but no engine carried it out "
                          f"within {FORWARD_TIMEOUT:g}s",
                          hint="the rollout leader may be down: another engine takes over within seconds; "
                               "see `caxton rollout status` and retry")
    return ended
