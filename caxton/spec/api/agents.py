"""Wire models of health, agents, their operations, messages, logs, events and revision history."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue

from caxton.spec.api.common import WireModel
from caxton.spec.health import HealthStatus
from caxton.spec.state import AgentState


# --- health -------------------------------------------------------------------------------------
class EnginePhase(StrEnum):
    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"


class Health(WireModel):
    """``GET /health``: liveness, no store access."""

    status: HealthStatus
    phase: EnginePhase
    memory_backend: str = Field(description="the memory backend, or disabled")
    agents: int = Field(description="agents with a route (serving or draining)")


class StoreInfo(WireModel):
    """Where the engine's state is: the SQLite file in the data directory, or a PostgreSQL database (store.url)."""

    backend: Literal["sqlite", "postgres"] = Field("sqlite", description="the state backend")
    path: str | None = Field(description="the SQLite file (null on PostgreSQL)")
    location: str | None = Field(None, description="the file, or the database URL without its password")
    migrations: list[str]
    schema_version: int | None = Field(None, description="how many migrations the store has")
    written_by: str | None = Field(None, description="the caxton version that last migrated the store")
    status: HealthStatus = Field(HealthStatus.HEALTHY, description="unhealthy while the PostgreSQL store does "
                                 "not answer (the engine keeps serving; changes are refused)")
    message: str | None = Field(None, description="why the store is unavailable (store_unavailable)")
    hint: str | None = None
    unavailable_seconds: float | None = Field(None, description="how long the store has not answered")


class RuntimeStats(WireModel):
    """One running revision of an agent; the runtime adds fields of its kind (wasm, config)."""

    revision: int
    inflight: int | None = None
    draining: bool | None = None


class MemoryHealth(WireModel):
    """``GET /health/memory``: the memory's status, model and entity count (or why it is unavailable)."""

    status: HealthStatus = Field(description="the memory's status (healthy with enabled: false when memory is off)")
    enabled: bool | None = Field(None, description="false when memory.enabled is false in caxton.yaml")
    model: str | None = None
    model_path: str | None = None
    model_sha256: str | None = None
    entities: int | None = None
    database: str | None = Field(None, description="the SQLite file, or the PostgreSQL URL without its password")
    backend: str | None = Field(None, description="sqlite or postgres (memory.backend)")
    server_version: str | None = Field(None, description="postgres: the server's version")
    pgvector: str | None = Field(None, description="postgres: the pgvector extension's version")
    message: str | None = None
    hint: str | None = None


class StorageHealth(WireModel):
    """Disk full / read-only faults: degraded for a while after a write failed on one (docs/api.md)."""

    status: HealthStatus
    faults: int = Field(description="storage faults since the engine started")
    code: str | None = Field(None, description="storage_full or storage_read_only, while degraded")
    message: str | None = None
    hint: str | None = None
    seconds_ago: float | None = Field(None, description="age of the last fault, while degraded")


class ReplicaInfo(WireModel):
    """An engine among several on one PostgreSQL store (docs/scale-out.md)."""

    leader: bool = Field(description="this engine drives the rollouts (holds the leadership lock)")
    syncs: int = Field(description="times it reconciled its runtimes to changes in the store")
    leadership_lost: int = Field(0, description="times it lost the leadership (its connection to the store)")


class HealthDetailed(Health):
    """``GET /health/detailed``: as ``Health``, degraded when an agent failed, a circuit is open, a write
    failed on a full or read-only disk, or the PostgreSQL store does not answer."""

    version: str
    uptime_seconds: float
    serial: int | None = Field(description="the state serial (null while the store does not answer)")
    data_dir: str
    store: StoreInfo
    agents_by_state: dict[str, int]
    runtimes: dict[str, list[RuntimeStats]] = Field(description="agent id -> its running revisions")
    memory: MemoryHealth
    storage: StorageHealth
    replica: ReplicaInfo | None = Field(None, description="on a PostgreSQL store only: leadership and following")


class Ready(WireModel):
    ready: Literal[True]


# --- agents -------------------------------------------------------------------------------------
class AgentSummary(WireModel):
    id: str
    name: str
    kind: str
    version: str
    state: str
    revision: int
    traffic: dict[str, int] = Field(description="revision number -> weight percent")
    updated_at: str | None = None


class AgentList(WireModel):
    serial: int
    agents: list[AgentSummary]


class RevisionInfo(WireModel):
    number: int
    version: str
    spec_digest: str
    created_at: str
    actor: str | None = None
    plan_id: str | None = None
    git_commit: str | None = None


class Event(WireModel):
    id: int
    at: str
    serial: int
    agent: str | None
    what: str
    from_state: str | None
    to_state: str | None
    revision: int | None
    message: str
    actor: str | None
    plan_id: str | None
    git_commit: str | None
    data: JsonValue = None


class EventList(WireModel):
    serial: int
    events: list[Event]


class AgentDetail(AgentState):
    """``GET /agents/{name}``: the agent's state, its running revisions, kept revisions and last events."""

    model_config = WireModel.model_config
    runtime: list[RuntimeStats]
    revisions: list[RevisionInfo]
    events: list[Event]


class LogLine(WireModel):
    at: str
    level: str
    revision: int | None = None
    message: str


class AgentLogs(WireModel):
    agent: str
    lines: list[LogLine]


# --- operations ---------------------------------------------------------------------------------
class SourceRequest(BaseModel):
    """Who asked for a change, and from which plan and commit (recorded in the agent's events)."""

    actor: str | None = Field(None, max_length=200, description="who asked (user, CI job)")
    plan_id: str | None = Field(None, max_length=200)
    git_commit: str | None = Field(None, max_length=200)


class DeployRequest(BaseModel):
    spec: dict[str, Any] = Field(description="the agent model as JSON (an agent file's fields)")
    module: str | None = Field(None, description="WASM module, base64; null for config agents")
    source: SourceRequest | None = None


class ActionRequest(BaseModel):
    source: SourceRequest | None = None


class OperationResult(WireModel):
    """What deploy, suspend, resume, remove or rollback did to an agent."""

    action: str = Field(description="what was done (created, updated, unchanged, suspended, resumed, removed...)")
    agent: str
    name: str
    kind: str
    state: str
    revision: int | None
    previous_revision: int | None
    serial: int
    spec_digest: str | None


class MessageRequest(BaseModel):
    content: Any = Field(description="the message: text or any JSON value")
    conversation_id: str | None = Field(None, max_length=200)


class MessageReply(WireModel):
    agent: str
    revision: int
    conversation_id: str | None
    reply: JsonValue = Field(description="the agent's reply: text or any JSON value; a config agent's is a "
                                         "ConfigAgentReply (docs/api.md)")
    duration_ms: float


class ToolCallRecord(WireModel):
    """One tool call a config agent's model made while answering (docs/tools.md)."""

    id: str = Field(description="the call's id, as the model gave it")
    tool: str
    arguments: JsonValue = Field(description="the arguments (the model's text when it is not JSON)")
    outcome: str = Field(description="ok, invalid_arguments, not_allowed, timeout, too_large, failed, max_tool_calls")
    result: JsonValue = Field(description='what the model was given: the result, or {"error": {reason, message}}')
    duration_ms: float


class ModelRound(WireModel):
    """One request to the LLM provider while answering a message (the trace of ``caxton agents send --trace``)."""

    round: int = Field(description="1 for the first request, then one more after each round of tool calls")
    duration_ms: float = Field(description="the provider's time for this request")
    tool_calls: list[str] = Field(description="ids of the calls the model asked for ([]: its final answer)")


class ConfigAgentReply(WireModel):
    """The ``reply`` of a config agent's ``MessageReply``."""

    reply: str = Field(description="the model's final answer")
    conversation_id: str | None
    provider: str
    model: str
    tool_calls: list[ToolCallRecord] | None = Field(
        None, description="the tool calls of this message, in order; present when the agent lists tools")
    rounds: list[ModelRound] | None = Field(
        None, description="the requests to the provider, in order: the model rounds of `caxton agents send --trace`")


# --- revision history -----------------------------------------------------------------------------
class RevisionOutcome(WireModel):
    revision: int
    version: str
    digest: str
    module_sha256: str | None
    git_commit: str | None
    plan_id: str | None
    actor: str | None
    applied_at: str
    outcome: str = Field(description="serving, deployed, superseded, rolled_back, failed")


class AgentHistory(WireModel):
    agent: str
    name: str
    serving: int | None
    state: str
    revisions: list[RevisionOutcome] = Field(description="newest first")


class RollbackSource(BaseModel):
    actor: str | None = None
    plan_id: str | None = None


class RollbackRequest(BaseModel):
    to_version: str | None = None
    to_revision: int | None = Field(None, ge=1, le=2**63 - 1)
    source: RollbackSource | None = None
