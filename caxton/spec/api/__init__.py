"""The engine's wire contract: every request and response body of ``/api/v1``, as pydantic models.

One place for both sides: the engine declares these as ``response_model``s,
request bodies and error responses (so ``GET /openapi.json`` types every
answer), and ``caxton.client`` parses every answer into them. Pure data: no
I/O, no web framework. Response models keep fields they do not know
(``extra="allow"``), so a newer engine's additions pass through an older
client; ``wire`` turns a parsed model back into exactly the JSON it came from
(what ``--output json`` prints). See docs/api.md.
"""

from __future__ import annotations

from caxton.spec.api.admin import (
    BackupDatabase,
    BackupDownload,
    BackupManifest,
    BackupMember,
    BoardView,
    ReconcileRun,
    ReconcileStatusReport,
    ReportAck,
    Trigger,
    TriggerAck,
    TriggerRequest,
)
from caxton.spec.health import HealthStatus
from caxton.spec.api.agents import (
    ActionRequest,
    AgentDetail,
    AgentHistory,
    AgentList,
    AgentLogs,
    AgentSummary,
    DeployRequest,
    EnginePhase,
    Event,
    EventList,
    Health,
    HealthDetailed,
    LogLine,
    MemoryHealth,
    StorageHealth,
    MessageReply,
    ConfigAgentReply,
    ModelRound,
    ToolCallRecord,
    MessageRequest,
    OperationResult,
    Ready,
    RevisionInfo,
    RevisionOutcome,
    RollbackRequest,
    RollbackSource,
    RuntimeStats,
    SourceRequest,
    StoreInfo,
)
from caxton.spec.api.applies import (
    ACCEPTED,
    FINAL,
    ApplyChange,
    ApplyLine,
    ApplyList,
    ApplyStatus,
    ApplySubmission,
    ApplySummary,
    ApplyView,
    ChangeAction,
    ChangeResult,
    ChangeStatus,
    Lease,
    LockGrant,
    LockRelease,
    LockRequest,
    LockStatus,
    RenewRequest,
)
from pydantic import JsonValue

from caxton.spec.api.common import MAX_INT, MIN_INT, ErrorBody, ErrorDetail, Int64, JsonObject, WireModel, wire
from caxton.spec.api.memory import (
    BatchRequest,
    Deleted,
    Entity,
    EntityList,
    EntityPatch,
    EntityRequest,
    Graph,
    ImportReport,
    IndexInfo,
    MemoryStats,
    Merge,
    ReindexReport,
    Relation,
    RelationList,
    RelationRequest,
    Scope,
    SearchHit,
    SearchRequest,
    SearchResults,
    VacuumReport,
)
from caxton.spec.api.stream import (
    STREAM_DATA,
    STREAM_KINDS,
    ApplyProgress,
    RolloutChange,
    RolloutProgress,
    StreamEnd,
    StreamKind,
)
from caxton.spec.api.rollouts import (
    ROLLOUT_ACTIVE,
    ROLLOUT_FINAL,
    Measurement,
    RolloutActionRequest,
    RevisionPoints,
    RolloutList,
    RolloutLive,
    RolloutSeries,
    RolloutStatus,
    RolloutView,
    RolloutWindow,
    SeriesPoint,
)

__all__ = [
    "ACCEPTED", "FINAL", "MAX_INT", "MIN_INT", "Int64", "JsonObject", "JsonValue", "ROLLOUT_ACTIVE", "ROLLOUT_FINAL",
    "ActionRequest", "AgentDetail", "AgentHistory", "AgentList", "AgentLogs", "AgentSummary", "ApplyChange",
    "ApplyLine", "ApplyList", "ApplyStatus", "ApplySubmission", "ApplySummary", "ApplyView", "BackupDatabase",
    "BackupDownload", "BackupManifest", "BackupMember", "BatchRequest", "BoardView", "ChangeAction", "ChangeResult",
    "ChangeStatus", "Deleted", "DeployRequest", "EnginePhase", "Entity", "EntityList", "EntityPatch",
    "EntityRequest", "ErrorBody", "ErrorDetail", "Event", "EventList", "Graph", "Health", "HealthDetailed",
    "HealthStatus", "ImportReport", "IndexInfo", "Lease", "LockGrant", "LockRelease", "LockRequest", "LockStatus",
    "LogLine", "Measurement", "MemoryHealth", "MemoryStats", "StorageHealth", "Merge", "MessageReply", "MessageRequest", "ConfigAgentReply", "ModelRound", "ToolCallRecord",
    "OperationResult", "Ready", "ReconcileRun", "ReconcileStatusReport", "ReindexReport", "Relation",
    "RelationList", "RelationRequest", "RenewRequest", "ReportAck", "RevisionInfo", "RevisionOutcome",
    "RollbackRequest", "RollbackSource", "RolloutActionRequest", "RolloutList", "RolloutLive", "RolloutStatus",
    "RolloutView", "RolloutWindow", "RevisionPoints", "RolloutSeries", "SeriesPoint", "STREAM_DATA", "STREAM_KINDS", "ApplyProgress", "RolloutChange", "RolloutProgress", "StreamEnd",
    "StreamKind", "RuntimeStats", "Scope", "SearchHit", "SearchRequest", "SearchResults",
    "SourceRequest", "StoreInfo", "Trigger", "TriggerAck", "TriggerRequest", "VacuumReport", "WireModel", "wire",
]
