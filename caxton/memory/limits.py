"""The memory's limits: batch validation, name conflicts, global and per-agent entity quotas.

Called by :mod:`caxton.memory.service` before embedding (``check_batch``) and
inside the write transaction (``check_quotas``), so a refused batch stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from caxton import errors
from caxton.memory import backend, models

Key = tuple[str, str, str]


def check_batch(items: Sequence[models.EntityInput], max_observation_size: int) -> None:
    """Every item valid (413 for an oversized observation) and no name twice in the batch."""
    seen: set[Key] = set()
    for position, item in enumerate(items):
        models.check_input(item, max_observation_size, where=f"entity {position} ({item.name!r})")
        if item.key in seen:
            raise errors.InvalidInput(f"entity {position}: {item.name!r} appears twice in the batch")
        seen.add(item.key)


def check_quotas(
    db: backend.MemoryStore,
    max_entities: int,
    agent_limits: Mapping[str, int],
    items: Sequence[models.EntityInput],
    existing: Mapping[Key, models.Entity],
    merge: models.Merge,
) -> None:
    """Conflicts (merge ``error``), then the global and per-owner entity counts after the write."""
    clashes = [i.name for i in items if i.key in existing]
    if clashes and merge == "error":
        raise errors.Conflict(
            f"{len(clashes)} entities already exist: {', '.join(clashes[:5])}",
            hint="use merge 'update' or 'skip', or delete them first",
        )
    new = [i for i in items if i.key not in existing]
    total = db.count() + len(new)
    if total > max_entities:
        raise errors.LimitExceeded(
            f"memory would hold {total} entities; the limit is {max_entities}",
            hint="delete entities, or raise memory.max_entities in caxton.yaml",
        )
    _check_owners(db, agent_limits, new)


def _check_owners(db: backend.MemoryStore, agent_limits: Mapping[str, int], new: Sequence[models.EntityInput]) -> None:
    added: dict[str, int] = {}
    for item in new:
        if item.owner is not None and item.owner in agent_limits:
            added[item.owner] = added.get(item.owner, 0) + 1
    for owner, count in added.items():
        total, limit = db.count(owner) + count, agent_limits[owner]
        if total > limit:
            raise errors.LimitExceeded(
                f"agent {owner!r} would own {total} memory entities; its limit is {limit}",
                hint="raise resource_limits.max_memory_entities in the agent file, or delete its entities",
            )
