"""Value types of the memory: entities, relations, search hits, and input checks.

Shared by the store (rows -> values), the service (limits, scopes) and the
engine's memory API (``to_dict`` is the JSON shape on the wire, typed by
``caxton.spec.api.memory``, which also holds the scopes, merges and limits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

from caxton import errors
from caxton.spec.api.memory import MAX_NAME_LENGTH as MAX_NAME_LENGTH
from caxton.spec.api.memory import MAX_TYPE_LENGTH as MAX_TYPE_LENGTH
from caxton.spec.api.memory import Merge as Merge
from caxton.spec.api.memory import Scope as Scope

SCOPES: tuple[Scope, ...] = get_args(Scope)
MERGES: tuple[Merge, ...] = get_args(Merge)


@dataclass(frozen=True)
class Entity:
    id: int
    name: str
    entity_type: str
    observations: tuple[str, ...]
    scope: Scope
    owner: str | None
    created_at: str
    updated_at: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["observations"] = list(self.observations)
        return out

    @property
    def key(self) -> tuple[str, str, str]:
        return entity_key(self.scope, self.owner, self.name)


@dataclass(frozen=True)
class EntityInput:
    """What a caller asks to store; checked by :func:`check_input`."""

    name: str
    entity_type: str
    observations: tuple[str, ...] = ()
    scope: Scope = "workspace"
    owner: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return entity_key(self.scope, self.owner, self.name)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "entity") -> EntityInput:
        """Build from JSON (API bodies, export lines); raises InvalidInput naming ``where``."""
        observations = data.get("observations", [])
        if not isinstance(observations, list) or not all(isinstance(o, str) for o in observations):
            raise errors.InvalidInput(f"{where}: observations must be a list of strings")
        values = {k: data.get(k) for k in ("name", "entity_type", "scope", "owner")}
        values["entity_type"] = values["entity_type"] or data.get("type")
        for name in ("name", "entity_type"):
            if not isinstance(values[name], str):
                raise errors.InvalidInput(f"{where}: {name} must be a string")
        if values["owner"] is not None and not isinstance(values["owner"], str):
            raise errors.InvalidInput(f"{where}: owner must be a string or null")
        return cls(
            name=str(values["name"]),
            entity_type=str(values["entity_type"]),
            observations=tuple(observations),
            scope=values["scope"] or "workspace",
            owner=values["owner"],
        )


@dataclass(frozen=True)
class Relation:
    id: int
    from_id: int
    to_id: int
    relation_type: str
    strength: float
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchHit:
    entity: Entity
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"similarity": round(self.similarity, 6), **self.entity.to_dict()}


@dataclass(frozen=True)
class Graph:
    """An entity's neighbourhood: the entities reached and the relations walked."""

    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "entities": [e.to_dict() for e in self.entities],
            "relations": [r.to_dict() for r in self.relations],
        }


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    relations: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def entity_key(scope: str, owner: str | None, name: str) -> tuple[str, str, str]:
    """The uniqueness key: names are unique per scope, and per owner inside ``agent`` scope."""
    return (scope, (owner or "") if scope == "agent" else "", name)


def check_scope(scope: str) -> Scope:
    if scope not in SCOPES:
        raise errors.InvalidInput(
            f"unknown memory scope {scope!r}",
            hint="use one of: agent, workspace, global",
        )
    return scope  # type: ignore[return-value]


def check_merge(merge: str) -> Merge:
    if merge not in MERGES:
        raise errors.InvalidInput(f"unknown merge strategy {merge!r}", hint="use one of: update, skip, error")
    return merge  # type: ignore[return-value]


def check_observations(observations: Sequence[str], max_size: int, where: str = "observation") -> None:
    """Refuse any observation larger than ``max_size`` bytes (UTF-8) with 413."""
    for index, text in enumerate(observations):
        size = len(text.encode("utf-8"))
        if size > max_size:
            raise errors.PayloadTooLarge(
                f"{where} {index} is {size} bytes; the limit is {max_size} bytes",
                hint="split it into several observations or raise memory.max_observation_size in caxton.yaml",
            )


def check_input(item: EntityInput, max_observation_size: int, where: str = "entity") -> None:
    """Validate one entity to store (names, scope/owner pairing, sizes)."""
    if not item.name.strip() or len(item.name) > MAX_NAME_LENGTH:
        raise errors.InvalidInput(f"{where}: name must be 1-{MAX_NAME_LENGTH} characters")
    if not item.entity_type.strip() or len(item.entity_type) > MAX_TYPE_LENGTH:
        raise errors.InvalidInput(f"{where}: entity_type must be 1-{MAX_TYPE_LENGTH} characters")
    check_scope(item.scope)
    if item.scope == "agent" and not item.owner:
        raise errors.InvalidInput(
            f"{where}: scope 'agent' needs an owner",
            hint="set owner to the agent's name",
        )
    check_observations(item.observations, max_observation_size, where=f"{where}: observation")


def visible_scopes(agent_scope: str) -> tuple[Scope, ...]:
    """What an agent with ``memory.scope = agent_scope`` reads (it writes at its own scope).

    agent: only its own entities; workspace: its own + the workspace's;
    global: its own + workspace + global.
    """
    scope = check_scope(agent_scope)
    return SCOPES[: SCOPES.index(scope) + 1]
