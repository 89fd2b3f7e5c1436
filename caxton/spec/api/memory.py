"""Wire models of the vector memory: entities, relations, search, import/export reports and stats.

The export itself is JSON lines (``application/x-ndjson``), one entity or
relation per line (docs/memory.md), not a JSON document.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from caxton.spec.api.agents import MemoryHealth
from caxton.spec.api.common import Int64, WireModel

Scope = Literal["agent", "workspace", "global"]
Merge = Literal["update", "skip", "error"]
MAX_NAME_LENGTH = 512
MAX_TYPE_LENGTH = 128


# --- requests -----------------------------------------------------------------------------------
class EntityRequest(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    entity_type: str = Field(min_length=1, max_length=MAX_TYPE_LENGTH)
    observations: list[str] = Field(default_factory=list)
    scope: Scope = "workspace"
    owner: str | None = Field(None, max_length=200, description="owning agent; required for scope 'agent'")


class BatchRequest(BaseModel):
    entities: list[EntityRequest]
    merge: Merge = "error"


class EntityPatch(BaseModel):
    entity_type: str | None = Field(None, min_length=1, max_length=MAX_TYPE_LENGTH)
    observations: list[str] | None = Field(None, description="replace all observations")
    add_observations: list[str] = Field(default_factory=list, description="append these")
    expected_version: int | None = Field(None, ge=1, le=2**63 - 1, description="refuse (409) if the entity changed meanwhile")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=10_000)
    k: int = Field(10, ge=1, le=100)
    min_similarity: float | None = Field(None, ge=-1.0, le=1.0)
    types: list[str] | None = None
    scopes: list[Scope] | None = None
    agent: str | None = Field(None, description="search as this agent: other agents' private entities are hidden")


class RelationRequest(BaseModel):
    from_id: Int64
    to_id: Int64
    relation_type: str = Field(min_length=1, max_length=MAX_TYPE_LENGTH)
    strength: float = Field(1.0, ge=0.0, le=1.0)


# --- responses ----------------------------------------------------------------------------------
class Entity(WireModel):
    id: int
    name: str
    entity_type: str
    observations: list[str]
    scope: Scope
    owner: str | None
    created_at: str
    updated_at: str
    version: int


class EntityList(WireModel):
    entities: list[Entity]


class SearchHit(WireModel):
    similarity: float = Field(description="cosine similarity (higher is closer)")
    id: int
    name: str
    entity_type: str
    observations: list[str]
    scope: Scope
    owner: str | None
    created_at: str
    updated_at: str
    version: int


class SearchResults(WireModel):
    query: str
    results: list[SearchHit]


class Relation(WireModel):
    id: int
    from_id: int
    to_id: int
    relation_type: str
    strength: float
    created_at: str
    updated_at: str


class RelationList(WireModel):
    relations: list[Relation]


class Graph(WireModel):
    """An entity's neighbourhood: the entities reached and the relations walked."""

    entities: list[Entity]
    relations: list[Relation]


class Deleted(WireModel):
    deleted: int = Field(description="the id of what was deleted")


class ImportReport(WireModel):
    created: int
    updated: int
    skipped: int
    relations: int
    errors: list[str]
    requests: int | None = Field(None, description="client side: how many requests the import took")


class IndexInfo(WireModel):
    rows: int
    mode: str


class MemoryStats(WireModel):
    entities: int
    vectors: int
    relations: int
    max_entities: int | None
    by_scope: dict[str, int]
    by_type: dict[str, int]
    by_owner: dict[str, int]
    backend: str | None = Field(None, description="sqlite or postgres (memory.backend)")
    sqlite_size_bytes: int = Field(description="size of the memory database (on postgres: its tables and indexes)")
    bytes_per_entity: int | None
    index: IndexInfo
    model: str
    migrations: list[str]
    status: str
    health: MemoryHealth | None = Field(None, description="client side: /health/memory, for `caxton memory stats`")


class VacuumReport(WireModel):
    size_before_bytes: int
    size_after_bytes: int


class ReindexReport(WireModel):
    entities: int
    seconds: float
    health: MemoryHealth
