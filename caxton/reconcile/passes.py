"""One reconcile pass: plan + submit one revision on one engine, or on a rolling wave of engines.

The pass goes through ``caxton.client`` exactly like ``caxton plan`` and
``caxton apply``: the one plan/apply use case, ``caxton.client.plan_apply``
(``make`` loads the desired state first, so an invalid revision never reaches
the engine; ``run`` takes the lock, submits, releases it once the engine
accepted the changes). In watch mode
(``Options.wait`` off) the pass never follows a rollout: the apply id is
recorded (``caxton.reconcile.tracking``) and the loop goes on; a running
rollout is "no-op" in the plan, so it is never resubmitted, and a
rolled-back version is held until its agent's desired state changes. One
pass of ``caxton reconcile`` (``wait`` on) follows the apply to its end like
``caxton apply``. After the submission the engine is read again and each
agent gets its SYNC/HEALTH row (``caxton.reconcile.health``). Prune and the
delete-all guard are honoured. With several engines (an environment of
``caxton.yaml``) they are done in order and the wave stops at the first one
that is not converged and healthy. The result is a small frozen
``PassOutcome``; errors never escape. Called by ``caxton.reconcile.loop``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from caxton.client import lock, plan_apply, status
from caxton.client.transport import EngineClient, actor
from caxton.desired.model import DesiredState
from caxton.errors import (
    CaxtonError,
    Conflict,
    EngineUnreachable,
    InvalidInput,
    LockHeld,
    ValidationFailed,
)
from caxton.planning import build
from caxton.reconcile import health
from caxton.reconcile.health import AgentRow
from caxton.reconcile.sources import Source
from caxton.reconcile.tracking import Tracker
from caxton.spec.api import ACCEPTED, ApplyLine, ChangeResult
from caxton.spec.plan import Plan, PlanSource

log = logging.getLogger("caxton.reconcile")

#: A pass ended well: the engine has (or is rolling out) the revision; held agents are shown Degraded.
SUCCESS = frozenset({"applied", "progressing", "in_sync", "degraded"})
#: Retrying the same revision cannot help; wait for a new one.
PERMANENT = frozenset({"invalid", "refused", "rolled_back"})
#: Temporary: retry with backoff.
RETRY = frozenset({"failed", "unreachable", "error"})
#: An engine of a wave lets the wave go on only when it is converged and every agent healthy.
CONVERGED = frozenset({"applied", "in_sync"})
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
    wait: bool = False  # follow each apply to its end (one pass); the watch loop never does


@dataclass(frozen=True)
class EngineResult:
    """What one engine of the pass ended with (``commit``: the revision it now has, if known)."""

    engine: str
    outcome: str
    commit: str | None
    message: str
    changes: tuple[str, ...] = ()
    agents: tuple[AgentRow, ...] = ()
    apply_id: str | None = None


@dataclass(frozen=True)
class PassOutcome:
    outcome: str  # applied, progressing, in_sync, degraded, invalid, refused, failed, rolled_back, unreachable, error
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


def run(source: Source, revision: str, targets: list[Target], options: Options,
        trackers: dict[str, Tracker] | None = None, desired: dict[str, DesiredState] | None = None) -> PassOutcome:
    """Plan and submit ``revision`` of ``source`` on each target in turn; never raises.

    ``trackers`` (per engine URL) carry the applies in flight and the held agents from pass to pass;
    ``desired`` receives the desired state each engine was planned against (for later refreshes).
    """
    trackers = trackers if trackers is not None else {}
    began = time.monotonic()
    path, ref = source.location(revision)
    results: list[EngineResult] = []
    commit: str | None = None
    diagnostics: tuple[dict[str, Any], ...] = ()
    for target in targets:
        tracker = trackers.setdefault(target.url, Tracker())
        result, commit, diagnostics, loaded = _one(target, path, ref, options, commit, tracker)
        if loaded is not None and desired is not None:
            desired[target.url] = loaded
        results.append(result)
        if not _wave_goes_on(result):
            break
    last = results[-1]
    message = last.message if len(targets) == 1 else _wave_message(results, len(targets))
    return PassOutcome(last.outcome, revision, commit, message, time.monotonic() - began, diagnostics, tuple(results))


def _wave_goes_on(result: EngineResult) -> bool:
    settled = all(row.health in (health.HEALTHY, health.SUSPENDED) for row in result.agents)
    return result.outcome in CONVERGED and settled


def _wave_message(results: list[EngineResult], total: int) -> str:
    done = [r for r in results if r.outcome in SUCCESS]
    text = f"{len(done)} of {total} engine(s) at this revision"
    if len(done) < len(results):
        failed = results[-1]
        text += f"; stopped at {failed.engine} ({failed.outcome}: {failed.message})"
    return text


def _one(
    target: Target, path: str, ref: str | None, options: Options, commit: str | None, tracker: Tracker,
) -> tuple[EngineResult, str | None, tuple[dict[str, Any], ...], DesiredState | None]:
    desired: DesiredState | None = None
    try:
        with EngineClient(target.url, token=target.token, timeout=options.client_timeout) as client:
            tracker.settle(client)
            planned = plan_apply.make(client, path, ref=ref, prune=options.prune, allow_delete_all=options.allow_delete_all)
            desired, commit = planned.desired, ref or planned.desired.digest
            plan, held = tracker.hold(planned.plan)
            if not plan.has_changes:
                rows = rows_now(client, desired, tracker, options)
                if held:
                    text = "held (rolled back; waiting for a new desired state): " + ", ".join(held)
                    return EngineResult(target.url, "degraded", commit, text, (), rows), commit, (), desired
                return EngineResult(target.url, "in_sync", commit, _in_sync(rows), (), rows), commit, (), desired
            result = _submit(client, plan, planned.desired, options, tracker, target.url, commit)
            rows = rows_now(client, desired, tracker, options)
    except ValidationFailed as invalid:
        found = _diagnostics(invalid)
        return EngineResult(target.url, "invalid", None, invalid.message), commit, found, desired
    except EngineUnreachable as error:
        return EngineResult(target.url, "unreachable", None, _text(error)), commit, (), desired
    except Conflict as error:  # lock held by someone else, stale plan: try again soon
        return EngineResult(target.url, "failed", None, _text(error)), commit, (), desired
    except InvalidInput as error:  # the delete-all guard, a path missing at this commit
        return EngineResult(target.url, "refused", None, _text(error)), commit, (), desired
    except CaxtonError as error:
        return EngineResult(target.url, "error", None, _text(error)), commit, (), desired
    return replace(result, agents=rows), commit, (), desired


def rows_now(client: EngineClient, desired: DesiredState, tracker: Tracker, options: Options) -> tuple[AgentRow, ...]:
    """Each agent's SYNC/HEALTH now: the engine read again and planned against (pure) the same desired state."""
    snapshot = status.state(client)
    request = build.PlanRequest(plan_id="status", created_at="", engine_url=client.base_url,
                                source=PlanSource(path="", git_commit=desired.git_commit),
                                prune=options.prune, allow_delete_all=True)
    return tuple(health.derive(snapshot, build.make_plan(desired, snapshot, request), tracker.held))


def _in_sync(rows: tuple[AgentRow, ...]) -> str:
    busy = [f"{row.name} {row.health.lower()}" for row in rows if row.health in health.IN_FLIGHT]
    return "no changes: the engine matches" + (f" ({', '.join(busy)})" if busy else "")


def _submit(client: EngineClient, plan: Plan, desired: DesiredState, options: Options, tracker: Tracker,
            url: str, commit: str | None) -> EngineResult:
    """Submit ``plan``; follow it to its end only with ``options.wait``; record it in ``tracker`` otherwise."""
    outcome = _apply(client, plan, desired, options)
    if outcome.apply_id is not None and not options.wait:
        tracker.record(outcome.apply_id, plan, outcome.status, outcome.results)
    changes = tuple(_change(r) for r in outcome.results)
    done = f"apply {outcome.apply_id}"
    if outcome.status == "succeeded":
        return EngineResult(url, "applied", commit, f"{done} succeeded", changes, apply_id=outcome.apply_id)
    if outcome.status == ACCEPTED:
        return EngineResult(url, "progressing", commit, f"{done} accepted; rollouts go on on the engine", changes,
                            apply_id=outcome.apply_id)
    if outcome.status == "rolled_back":
        outcome_name = "rolled_back" if options.wait else "degraded"
        return EngineResult(url, outcome_name, commit if not options.wait else None, f"{done} rolled back", changes,
                            apply_id=outcome.apply_id)
    failed = [f"{r.id}: {r.message}" for r in outcome.results if r.status == "failed"]
    return EngineResult(url, "failed", None, f"{done} {outcome.status}: " + "; ".join(failed), changes,
                        apply_id=outcome.apply_id)


def _apply(client: EngineClient, plan: Plan, desired: DesiredState, options: Options) -> plan_apply.ApplyOutcome:
    """Submit until accepted (with ``wait``, follow to the end); a lease this very process left is freed."""
    def run() -> plan_apply.ApplyOutcome:
        return plan_apply.run(client, plan, desired, on_line=_progress(client.base_url),
                            detach=not options.wait, timeout=options.apply_timeout)

    try:
        outcome = run()
    except LockHeld as held:
        details = held.details if isinstance(held.details, dict) else {}
        if details.get("holder") != actor():
            raise
        log.info("%s: releasing the apply lock this loop held before the engine restarted", client.base_url)
        lock.release(client, None, force=True)
        outcome = run()
    return outcome


def _change(result: ChangeResult) -> str:
    revision = f" (revision {result.revision})" if result.revision else ""
    verb = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted"}.get(
        result.action, result.action)
    if result.status in ("running", "paused"):
        verb = f"rollout {result.status}"
    elif result.status != "done":
        verb = f"{result.action} {result.status}"
    return f"{result.id} {verb}{revision}"


def _progress(url: str) -> plan_apply.Line:
    def line(event: ApplyLine) -> None:
        if event.agent:
            log.info("%s: %s: %s", url, event.agent, event.message)

    return line


def _diagnostics(invalid: ValidationFailed) -> tuple[dict[str, Any], ...]:
    state = invalid.details
    found = getattr(state, "diagnostics", ())
    errors = [d for d in found if d.severity.value == "error"] + [d for d in found if d.severity.value != "error"]
    return tuple(d.model_dump(mode="json") for d in errors[:MAX_DIAGNOSTICS])


def _text(error: CaxtonError) -> str:
    return error.message if not error.hint else f"{error.message} (hint: {error.hint})"
