"""The one error hierarchy of Caxton.

Library code raises these; the CLI maps them to exit codes in exactly one
place (``caxton.cli.main``) and the engine maps them to HTTP statuses in
exactly one place (``caxton.engine.http.app``). Every error says what went wrong,
where, and how to fix it (``hint``).
"""

from __future__ import annotations

import errno
from typing import Any


class CaxtonError(Exception):
    """Base class: an error the user can act on."""

    #: Stable machine-readable code (used in JSON output and API errors).
    code: str = "error"
    #: HTTP status the engine answers with when this error crosses the API.
    http_status: int = 400

    @property
    def revision_fault(self) -> bool:
        """Whether this error, raised while a revision handled a message, is that revision's own fault.

        Only those count as failures in a rollout's analysis (docs/rollouts.md):
        client errors (invalid input, too large, too many conversations, rate
        limits) and engine conditions (shutting down, storage) never do.
        ``AgentFailure`` overrides it.
        """
        return False

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details is not None:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InvalidInput(CaxtonError):
    """The user's input (files, arguments, request) is malformed."""

    code = "invalid_input"
    http_status = 422


class ValidationFailed(InvalidInput):
    """Desired state has validation errors; ``details`` holds the diagnostics."""

    code = "validation_failed"


class PathEscape(InvalidInput):
    """A path in the desired state points outside the repository root."""

    code = "path_escape"


class GitError(CaxtonError):
    """A git revision or repository could not be read."""

    code = "git_error"


class NotFound(CaxtonError):
    code = "not_found"
    http_status = 404


class Conflict(CaxtonError):
    """The request conflicts with current state (lock held, stale plan...)."""

    code = "conflict"
    http_status = 409


class LockHeld(Conflict):
    code = "lock_held"


class StalePlan(Conflict):
    code = "stale_plan"


class IllegalTransition(Conflict):
    """A state machine was asked for a transition it does not allow."""

    code = "illegal_transition"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class LimitExceeded(Conflict):
    """A configured quota would be exceeded: memory entities (globally or per agent), the WASM memory budget."""

    code = "limit_exceeded"


class Unauthorized(CaxtonError):
    code = "unauthorized"
    http_status = 401


class Forbidden(CaxtonError):
    """The caller is known but may not do this (role missing, foreign Origin or Host)."""

    code = "forbidden"
    http_status = 403


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"
    http_status = 415


class EngineUnreachable(CaxtonError):
    """The CLI could not reach the engine's API."""

    code = "engine_unreachable"
    http_status = 503


class EngineError(CaxtonError):
    """The engine answered with an error (carried over from its JSON body)."""

    code = "engine_error"
    http_status = 500


class SandboxError(CaxtonError):
    """A WASM module could not be compiled, instantiated or run."""

    code = "sandbox_error"
    http_status = 422


class AgentFailure(CaxtonError):
    """An agent failed to handle a message (trap, fuel, timeout, provider error).

    Every one carries ``details.reason`` (``internal`` unless the runtime says more).
    """

    code = "agent_failure"
    http_status = 502

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None, reason: str = "internal") -> None:
        merged = {"reason": reason, **(details if isinstance(details, dict) else {})}
        super().__init__(message, hint=hint, details=merged)
        self.reason: str = merged["reason"]

    @property
    def revision_fault(self) -> bool:
        """A 5xx failure (trap, fuel, time, memory, bad reply, open circuit, provider error) is; a 4xx is not."""
        return self.http_status >= 500


class Unavailable(CaxtonError):
    """Temporarily unable to serve (circuit open, draining, shutting down)."""

    code = "unavailable"
    http_status = 503


class StoreUnavailable(Unavailable):
    """The engine's PostgreSQL store does not answer (down, restarting, unreachable, no connection free).

    503: the engine keeps serving the agents it runs; what needs the store (changes, the apply
    lock, rollouts, config agents' conversations) is refused until the database answers again,
    and works then without restarting the engine (``caxton.engine.state.pg_connections``).
    """

    code = "store_unavailable"


class RolledBack(CaxtonError):
    """An apply finished, but one or more changes were rolled back."""

    code = "rolled_back"


class ApplyTimeout(CaxtonError):
    """``caxton apply`` stopped waiting (``--timeout``) while the engine goes on with the apply."""

    code = "apply_timeout"


class Interrupted(CaxtonError):
    code = "interrupted"


class AgentOverloaded(CaxtonError):
    """An agent's message queue is full (``server.max_queued_messages_per_agent``): refused at once.

    429 with ``Retry-After`` (``retry_after``, seconds): the engine is healthy, this agent is
    behind. A client's excess, never the revision's fault (rollout analysis ignores it).
    """

    code = "agent_overloaded"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class QueueTimeout(AgentOverloaded):
    """A message waited ``server.max_queue_wait`` for its agent without getting a turn: 503 with ``Retry-After``."""

    code = "queue_timeout"
    http_status = 503


class TooManyConversations(Unavailable):
    """A config agent already holds ``resource_limits.max_conversations`` open conversations.

    429, not 503: the engine is healthy; this agent refuses *new* conversations
    until one ends or expires (existing ones and stateless messages still work).
    """

    code = "too_many_conversations"
    http_status = 429
    #: Seconds until an open conversation may give up its slot (``conversations.min_idle``): ``Retry-After``.
    retry_after: float | None = None


class ToolFailure(CaxtonError):
    """One tool call failed (bad arguments, a refused host, a timeout, the tool's own error).

    Never leaves the tool loop as an HTTP error: the loop hands it back to the
    model as the call's result (``{"error": {"reason", "message"}}``).
    Reasons: ``invalid_arguments``, ``not_allowed`` (a tool or host the agent may
    not use), ``timeout`` (``tool_call_timeout``), ``too_large``, ``failed``.
    """

    code = "tool_failure"

    def __init__(self, message: str, *, reason: str = "failed", hint: str | None = None, details: Any = None) -> None:
        super().__init__(message, hint=hint, details=details)
        self.reason = reason


class ConfigAgentFailure(AgentFailure):
    """A config agent failed one message; ``reason`` says why.

    Reasons: ``template`` (render error or sandbox escape), ``timeout``
    (``response_timeout`` exceeded, HTTP 504), ``memory``, ``missing_api_key``,
    ``unauthorized``, ``rejected`` (other 4xx), ``rate_limited``,
    ``upstream_error`` (5xx), ``unreachable``, ``bad_response``, ``prompt_too_large``
    (``llm.max_prompt_size``), ``reply_too_large`` (``llm.max_reply_size``),
    ``tool_loop`` (the model still asked for tools after ``max_tool_calls``).
    """

    def __init__(
        self, message: str, *, reason: str, hint: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message, hint=hint, details=details, reason=reason)
        if reason == "timeout":
            self.http_status = 504


class RateLimited(CaxtonError):
    """A token (or client address) spent its budget of messages or mutating calls; retry later."""

    code = "rate_limited"
    http_status = 429


class TooDeep(InvalidInput):
    """A JSON request body nests deeper than the engine accepts."""

    code = "json_too_deep"
    http_status = 400


class HeadersTooLarge(InvalidInput):
    """A request's headers are too many or too big."""

    code = "headers_too_large"
    http_status = 431


class BackupInvalid(InvalidInput):
    """A backup archive is truncated, corrupted, or not a Caxton backup."""

    code = "backup_invalid"


class BackupTooNew(BackupInvalid):
    """A backup archive was written by a newer Caxton (unknown format or schema migrations)."""

    code = "backup_too_new"


class RestoreRefused(Conflict):
    """A restore would overwrite a data directory that holds a store (without --force)."""

    code = "restore_refused"


class StorageDamaged(CaxtonError):
    """``caxton storage verify`` found a problem in a data directory (integrity, a blob, a missing revision)."""

    code = "storage_damaged"


class StorageFull(CaxtonError):
    """The engine could not write: its disk (or a database's size cap) is full. 507 Insufficient Storage."""

    code = "storage_full"
    http_status = 507


class StorageReadOnly(Unavailable):
    """The engine could not write: its data directory or a database is read-only."""

    code = "storage_read_only"


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL, _SQLITE_READONLY = 13, 8


def storage_fault(error: BaseException) -> StorageFull | StorageReadOnly | None:
    """The storage condition behind ``error`` (or an error it was raised from or during), or None.

    Recognises SQLite's SQLITE_FULL and SQLITE_READONLY (from ``sqlite3`` or
    ``pysqlite3``: by error code, else by message) and ``OSError`` ENOSPC,
    EDQUOT and EROFS; a follow-on error (SQLite's "cannot rollback - no
    transaction is active" after it rolled a full transaction back) shows the
    cause it hid.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _classify(error: BaseException) -> StorageFull | StorageReadOnly | None:
    if isinstance(error, StorageFull | StorageReadOnly):
        return error
    if isinstance(error, OSError) and error.errno is not None:
        where = f" ({error.filename})" if error.filename else ""
        if error.errno in _FULL_ERRNOS:
            return StorageFull(f"the engine's disk is full{where}: {error.strerror}",
                               hint="free space on the engine's data volume (old backups, logs), then retry")
        if error.errno == errno.EROFS:
            return StorageReadOnly(f"the engine's storage is read-only{where}: {error.strerror}",
                                   hint="remount the data volume read-write (see the host's kernel log), then retry")
        return None
    if type(error).__module__.split(".")[0] not in ("sqlite3", "pysqlite3"):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    text = str(error)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return StorageFull(f"the engine's database is full: {text}",
                           hint="free space on the engine's data volume (old backups, logs), then retry")
    if primary == _SQLITE_READONLY or "readonly database" in text:
        return StorageReadOnly(f"the engine's database is read-only: {text}",
                               hint="make the data directory and its database files writable by the engine "
                                    "(or remount the volume read-write), then retry")
    return None
