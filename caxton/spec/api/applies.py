"""Wire models of plan/apply: the apply lock (a lease), a plan submission, and the views of an apply.

``ApplyStatus`` is the one vocabulary of an apply's status for the engine
(``caxton.engine.applies``), the client (``caxton.client.plan_apply``) and the
reconcile loop; ``FINAL`` are the statuses an apply never leaves.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from caxton.spec.api.common import Int64, WireModel


class ApplyStatus(StrEnum):
    RUNNING = "running"
    #: Every change performed or accepted; the engine follows the rollouts it started.
    PROGRESSING = "progressing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    INTERRUPTED = "interrupted"


FINAL = frozenset({ApplyStatus.SUCCEEDED, ApplyStatus.FAILED, ApplyStatus.ROLLED_BACK, ApplyStatus.SUPERSEDED,
                   ApplyStatus.INTERRUPTED})
ACCEPTED = ApplyStatus.PROGRESSING


class ChangeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    INTERRUPTED = "interrupted"


class ChangeAction(StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    UPDATE = "update"
    DELETE = "delete"


# --- the lock -------------------------------------------------------------------------------------
class LockRequest(BaseModel):
    holder: str = Field(min_length=1, max_length=200)
    reason: str = Field("", max_length=500)
    ttl: float = 30.0


class RenewRequest(BaseModel):
    token: str
    ttl: float = 30.0


class Lease(WireModel):
    """The apply lock's lease as anyone sees it (its token only goes to its holder)."""

    holder: str
    reason: str
    created_at: str
    expires_at: str
    expires_in: float = Field(description="seconds left")


class LockStatus(WireModel):
    held: bool
    lease: Lease | None


class LockGrant(WireModel):
    token: str = Field(description="renew, submit and release with it")
    lease: Lease


class LockRelease(WireModel):
    released: Lease | None


# --- a submission -------------------------------------------------------------------------------
class ApplyChange(BaseModel):
    id: str
    action: ChangeAction
    strategy: str = "immediate"
    spec: dict[str, Any] | None = Field(None, description="the agent model as JSON (not for delete)")
    digest: str | None = None
    module: str | None = Field(None, description="WASM module, base64")
    redeploy: bool = Field(False, description="start a new revision even when the spec is unchanged "
                           "(a WASM tool the agent lists changed)")


class ApplySubmission(BaseModel):
    """``POST /applies``: a plan's changes with the specs to apply, under the lock."""

    plan_id: str = ""
    engine_serial: Int64 | None = Field(None, description="the engine serial the plan was made at")
    desired_digest: str | None = None
    git_commit: str | None = None
    lock_token: str = ""
    changes: list[ApplyChange]


# --- views ----------------------------------------------------------------------------------------
class ChangeResult(WireModel):
    id: str
    action: str
    strategy: str
    status: ChangeStatus
    message: str
    revision: int | None
    duration_ms: float | None


class ApplyLine(WireModel):
    """One progress line of an apply (``seq`` counts from 1)."""

    seq: int
    at: str | None
    agent: str | None
    action: str | None
    status: str
    message: str
    revision: int | None = None
    duration_ms: float | None = None
    counts: dict[str, int] | None = Field(None, description="on the final line: changes by outcome")


class ApplySummary(WireModel):
    id: str
    plan_id: str
    status: ApplyStatus
    holder: str | None
    git_commit: str | None
    submitted_at: str
    finished_at: str | None
    engine: str | None = Field(None, description="the engine running it (its id in the engines table)")
    reason: str | None = Field(None, description="why it ended early: interrupted (the engine running it died, "
                               "the store became unavailable) or failed by an internal error; what landed")
    results: list[ChangeResult]


class ApplyView(ApplySummary):
    log: list[ApplyLine] = Field(description="progress lines after ``after``")


class ApplyList(WireModel):
    applies: list[ApplySummary] = Field(description="newest first, without their progress lines")
