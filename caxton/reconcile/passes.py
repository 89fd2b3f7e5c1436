"""One reconcile pass: plan + apply one revision on one engine, or on a rolling wave of engines.

The pass goes through ``caxton.client`` exactly like ``caxton plan`` and
``caxton apply``: ``plans.make`` (which loads the desired state first, so an
invalid revision never reaches the engine) and ``applying.run`` (lock,
submit, follow, release). Prune and the delete-all guard are honoured.
With several engines (an environment of ``caxton.yaml``) they are done in
order and the wave stops at the first one that does not end applied or in
sync. The result is a small frozen ``PassOutcome``; errors never escape.
Called by ``caxton.reconcile.loop`` and ``caxton reconcile`` (one pass).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from caxton.client import applying, plans
from caxton.client.engine import EngineClient
from caxton.errors import (
    CaxtonError,
    Conflict,
    EngineUnreachable,
    InvalidInput,
    LockHeld,
    ValidationFailed,
)
from caxton.reconcile.sources import Source

log = logging.getLogger("caxton.reconcile")

#: A pass ended well: the engine equals the revision.
SUCCESS = frozenset({"applied", "in_sync"})
#: Retrying the same revision cannot help; wait for a new one.
PERMANENT = frozenset({"invalid", "refused", "rolled_back"})
#: Temporary: retry with backoff.
RETRY = frozenset({"failed", "unreachable", "error"})
MAX_DIAGNOSTICS = 50


@dataclass(frozen=True)
class Target:
    """One engine to converge."""

    url: str
    token: str | None = None


@dataclass(frozen=True)
class Options:
    prune: bool = True
    allow_delete_all: bool = False
    apply_timeout: float = 600.0
    client_timeout: float = 30.0


@dataclass(frozen=True)
class EngineResult:
    """What one engine of the pass ended with (``commit``: the revision it now has, if known)."""

    engine: str
    outcome: str
    commit: str | None
    message: str
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PassOutcome:
    outcome: str  # applied, in_sync, invalid, refused, failed, rolled_back, unreachable, error
    revision: str | None
    commit: str | None  # git commit, or the desired-state digest for a plain directory
    message: str
    duration: float
    diagnostics: tuple[dict[str, Any], ...] = ()
    engines: tuple[EngineResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS

    @property
    def retry(self) -> bool:
        return self.outcome in RETRY


def source_failed(error: CaxtonError, duration: float) -> PassOutcome:
    """The pass could not even read the source (fetch failed, branch gone)."""
    return PassOutcome("error", None, None, _text(error), duration)


def run(source: Source, revision: str, targets: list[Target], options: Options) -> PassOutcome:
    """Plan and apply ``revision`` of ``source`` on each target in turn; never raises."""
    began = time.monotonic()
    path, ref = source.location(revision)
    results: list[EngineResult] = []
    commit: str | None = None
    diagnostics: tuple[dict[str, Any], ...] = ()
    for target in targets:
        result, commit, diagnostics = _one(target, path, ref, options, commit)
        results.append(result)
        if result.outcome not in SUCCESS:
            break
    last = results[-1]
    message = last.message if len(targets) == 1 else _wave_message(results, len(targets))
    return PassOutcome(last.outcome, revision, commit, message, time.monotonic() - began, diagnostics, tuple(results))


def _wave_message(results: list[EngineResult], total: int) -> str:
    done = [r for r in results if r.outcome in SUCCESS]
    text = f"{len(done)} of {total} engine(s) at this revision"
    if len(done) < len(results):
        failed = results[-1]
        text += f"; stopped at {failed.engine} ({failed.outcome}: {failed.message})"
    return text


def _one(
    target: Target, path: str, ref: str | None, options: Options, commit: str | None,
) -> tuple[EngineResult, str | None, tuple[dict[str, Any], ...]]:
    try:
        with EngineClient(target.url, token=target.token, timeout=options.client_timeout) as client:
            planned = plans.make(client, path, ref=ref, prune=options.prune, allow_delete_all=options.allow_delete_all)
            commit = ref or planned.desired.digest
            if not planned.plan.has_changes:
                return EngineResult(target.url, "in_sync", commit, "no changes: the engine matches"), commit, ()
            outcome = _apply(client, planned, options)
    except ValidationFailed as invalid:
        found = _diagnostics(invalid)
        return EngineResult(target.url, "invalid", None, invalid.message), commit, found
    except EngineUnreachable as error:
        return EngineResult(target.url, "unreachable", None, _text(error)), commit, ()
    except Conflict as error:  # lock held by someone else, stale plan, an apply still running: try again soon
        return EngineResult(target.url, "failed", None, _text(error)), commit, ()
    except InvalidInput as error:  # the delete-all guard, a path missing at this commit
        return EngineResult(target.url, "refused", None, _text(error)), commit, ()
    except CaxtonError as error:
        return EngineResult(target.url, "error", None, _text(error)), commit, ()
    return _applied(target.url, outcome, commit), commit, ()


def _apply(client: EngineClient, planned: plans.Planned, options: Options) -> applying.ApplyOutcome:
    """``applying.run``; a lease left by this very process (its apply cut short by an engine crash) is freed."""
    def run() -> applying.ApplyOutcome:
        return applying.run(client, planned.plan, planned.desired, on_line=_progress(client.base_url),
                            timeout=options.apply_timeout)

    try:
        return run()
    except LockHeld as held:
        details = held.details if isinstance(held.details, dict) else {}
        if details.get("holder") != plans.holder():
            raise
    log.info("%s: releasing the apply lock this loop held before the engine restarted", client.base_url)
    plans.release_lock(client, None, force=True)
    return run()


def _applied(url: str, outcome: applying.ApplyOutcome, commit: str | None) -> EngineResult:
    changes = tuple(_change(r) for r in outcome.results)
    if outcome.status == "succeeded":
        return EngineResult(url, "applied", commit, f"apply {outcome.apply_id} succeeded", changes)
    if outcome.status == "rolled_back":
        return EngineResult(url, "rolled_back", None, f"apply {outcome.apply_id} rolled back", changes)
    failed = [f"{r['id']}: {r['message']}" for r in outcome.results if r["status"] == "failed"]
    return EngineResult(url, "failed", None, f"apply {outcome.apply_id} {outcome.status}: " + "; ".join(failed),
                        changes)


def _change(result: dict[str, Any]) -> str:
    revision = f" (revision {result['revision']})" if result.get("revision") else ""
    verb = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted"}.get(
        str(result["action"]), str(result["action"]))
    if result["status"] != "done":
        verb = f"{result['action']} {result['status']}"
    return f"{result['id']} {verb}{revision}"


def _progress(url: str) -> Any:
    def line(event: dict[str, Any]) -> None:
        if event.get("agent"):
            log.info("%s: %s: %s", url, event["agent"], event["message"])

    return line


def _diagnostics(invalid: ValidationFailed) -> tuple[dict[str, Any], ...]:
    state = invalid.details
    found = getattr(state, "diagnostics", ())
    errors = [d for d in found if d.severity.value == "error"] + [d for d in found if d.severity.value != "error"]
    return tuple(d.model_dump(mode="json") for d in errors[:MAX_DIAGNOSTICS])


def _text(error: CaxtonError) -> str:
    return error.message if not error.hint else f"{error.message} (hint: {error.hint})"
