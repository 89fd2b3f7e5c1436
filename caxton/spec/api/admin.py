"""Wire models of administration: backups (admin role) and the reconcile loop's status board.

The loop's own status (``ReconcileStatusReport.status``, ``BoardView.status``)
is the JSON the loop writes (``caxton.reconcile.status``); the engine keeps it
as given.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from caxton.spec.api.common import WireModel


# --- backups --------------------------------------------------------------------------------------
class BackupDatabase(WireModel):
    member: str
    path: str
    migrations: list[str]
    schema_version: int


class BackupMember(WireModel):
    name: str
    size: int
    sha256: str


class BackupManifest(WireModel):
    """``POST /backups``: the archive written in the engine's data directory, and what it holds."""

    format: str
    format_version: int
    engine_version: str
    created_at: str
    serial: int
    databases: dict[str, BackupDatabase]
    members: list[BackupMember]
    counts: dict[str, int]
    duration_seconds: float
    size: int
    name: str = Field(description="download it from GET /backups/{name}")
    path: str = Field(description="where the engine wrote it")


class BackupDownload(BackupManifest):
    """Client side: the manifest of an archive downloaded to ``path`` (``engine_path``: the engine's copy)."""

    engine_path: str


# --- the reconcile board -----------------------------------------------------------------------
class ReconcileRun(BaseModel):
    outcome: str = Field(max_length=40)
    duration_seconds: float = Field(ge=0.0)


class ReconcileStatusReport(BaseModel):
    status: dict[str, Any] = Field(description="the loop's status (see docs/reconcile.md)")
    runs: list[ReconcileRun] = Field(default_factory=list, max_length=100,
                                     description="passes not counted yet (counted in the metrics now)")


class TriggerRequest(BaseModel):
    reason: str | None = Field(None, max_length=200)


class Trigger(WireModel):
    at: str
    reason: str | None


class BoardView(WireModel):
    """``GET /reconcile/status``: the latest status a loop reported, and the webhook's trigger counter."""

    board: str = Field(description="this board's instance (changes when the engine restarts)")
    now: str
    reported: bool
    reported_at: str | None
    status: dict[str, Any] | None
    triggers: int
    last_trigger: Trigger | None


class ReportAck(WireModel):
    triggers: int


class TriggerAck(WireModel):
    triggered: bool
    triggers: int
    loop_reported: bool
