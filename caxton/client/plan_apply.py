"""The plan/apply use case, one way for ``caxton plan``, ``caxton apply``, ``caxton reconcile`` and ``caxton up``.

1. ``make``: load and validate the desired state (``caxton.desired``; invalid ->
   ``ValidationFailed``), fetch the engine's snapshot, plan (``caxton.planning``,
   pure); ``reload_for``: the desired state of a saved plan, refused when the
   files changed since (``StalePlan``);
2. ``submit``: take the apply lock (waiting a few seconds while another apply
   is in its short change phase), submit the plan's changes with their specs
   (``submission``), relay the engine's progress lines until every change is
   performed or accepted (rollouts started), release the lock: the returned
   view's status is ``progressing`` (rollouts still running) or final;
3. ``follow``: relay an apply's lines until its outcome, holding nothing
   (``ApplyTimeout`` after ``timeout`` seconds; the engine carries on).

``run`` is submit then follow. ``caxton apply`` runs (``--no-wait``: detached);
the reconcile loop (``caxton reconcile``, ``caxton up``) runs detached and
records the apply id; ``caxton applies follow`` follows. The HTTP calls are the
resource modules' (``status``, ``lock``, ``applies``).
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from caxton.client import applies, lock, status
from caxton.client.transport import EngineClient
from caxton.desired import loader
from caxton.desired.model import DesiredState
from caxton.errors import ApplyTimeout, CaxtonError, EngineUnreachable, LockHeld, StalePlan, ValidationFailed
from caxton.planning import build, targeting
from caxton.spec import api
from caxton.spec.api import ACCEPTED, FINAL
from caxton.spec.plan import Plan, PlanSource


# --- make a plan ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    plan: Plan
    desired: DesiredState


def load_desired(path: str, ref: str | None, options: loader.Options = loader.SERIAL) -> DesiredState:
    """The desired state at ``path`` (``ref``: a git revision); invalid -> ``ValidationFailed``."""
    desired = loader.load(Path(path), ref=ref, options=options)
    if desired.has_errors():
        errors = [d for d in desired.diagnostics if d.severity.value == "error"]
        raise ValidationFailed(
            f"the desired state at {path} is invalid ({len(errors)} error(s)); nothing was planned",
            hint=f"run `caxton validate {path}` and fix the problems",
            details=desired,
        )
    return desired


def make(
    client: EngineClient, path: str, *, ref: str | None = None, prune: bool = True, allow_delete_all: bool = False,
    options: loader.Options = loader.SERIAL, targets: Sequence[str] = (),
) -> Planned:
    """Plan ``path`` (at ``ref``) against the engine behind ``client``; only ``targets`` when given.

    The plan records ``path`` made absolute, so a saved plan applies from any working directory.
    """
    desired = load_desired(path, ref, options)
    snapshot = status.state(client)
    request = build.PlanRequest(
        plan_id=uuid.uuid4().hex,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        engine_url=client.base_url,
        source=PlanSource(path=os.path.abspath(path), ref=ref, git_commit=desired.git_commit),
        prune=prune,
        allow_delete_all=allow_delete_all,
    )
    return Planned(targeting.select(build.make_plan(desired, snapshot, request), targets), desired)


def reload_for(plan: Plan, options: loader.Options = loader.SERIAL) -> DesiredState:
    """The desired state a saved plan was made from; refuses it when the files changed since."""
    desired = load_desired(plan.source.path, plan.source.ref, options)
    if desired.digest != plan.desired_digest:
        raise StalePlan(
            "plan is stale: the desired state changed since it was made; run plan again",
            hint=f"the files at {plan.source.path} no longer match the plan (digest {plan.desired_digest[:19]})",
        )
    return desired


def submission(plan: Plan, desired: DesiredState, lock_token: str) -> api.ApplySubmission:
    """The body of ``POST /api/v1/applies``: the plan's changes with the specs to apply."""
    wanted = desired.by_id()
    changes = []
    for change in plan.actionable():
        item = api.ApplyChange(id=change.id, action=api.ChangeAction(change.action), strategy=change.strategy,
                               redeploy=bool(change.tools_changed))
        agent = wanted.get(change.id)
        if agent is not None and change.action != "delete":
            item.spec = agent.spec.model_dump(mode="json")
            item.digest = agent.digest
            if agent.module_bytes is not None:
                item.module = base64.b64encode(agent.module_bytes).decode("ascii")
        changes.append(item)
    return api.ApplySubmission(plan_id=plan.plan_id, engine_serial=plan.engine_serial,
                               desired_digest=plan.desired_digest, git_commit=plan.source.git_commit,
                               lock_token=lock_token, changes=changes)


# --- submit and follow it -----------------------------------------------------------------------
LOCK_TTL = 30.0
#: Seconds ``submit`` waits for the lock while another apply is in its change phase.
LOCK_WAIT = 15.0
POLL = 2.0

Line = Callable[[api.ApplyLine], None]


@dataclass
class ApplyOutcome:
    apply_id: str | None
    #: succeeded, failed, rolled_back, superseded, interrupted; progressing (accepted, not followed); nothing
    status: str
    results: list[api.ChangeResult] = field(default_factory=list)
    #: Why it ended early (interrupted, failed by an internal error), as the engine says.
    reason: str | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.results:
            key = result.action if result.status == api.ChangeStatus.DONE else str(result.status)
            out[key] = out.get(key, 0) + 1
        return out

    @classmethod
    def of(cls, view: api.ApplySummary) -> ApplyOutcome:
        return cls(view.id, view.status, view.results, view.reason)


class _Renewer(threading.Thread):
    """Renews the lease every third of its ttl until stopped."""

    def __init__(self, client: EngineClient, token: str, ttl: float) -> None:
        super().__init__(name="caxton-lock-renewer", daemon=True)
        self.client, self.token, self.ttl = client, token, ttl
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.ttl / 3):
            try:
                lock.renew(self.client, self.token, self.ttl)
            except CaxtonError:
                continue  # the next renewal or the submission will report a real problem


def submit(
    client: EngineClient, plan: Plan, desired: DesiredState, *, on_line: Line | None = None,
    timeout: float | None = None, lock_wait: float = LOCK_WAIT, on_submitted: Callable[[str], None] | None = None,
) -> api.ApplyView:
    """Submit ``plan`` (specs from ``desired``); return the apply's view once the engine accepted it.

    The view's status is ``progressing`` or final, its ``log`` every line so far (each also given
    to ``on_line``); ``on_submitted`` gets the apply id as soon as the engine took the submission.
    The lock is released before returning, whatever happens.
    """
    lease = _acquire(client, f"apply plan {plan.plan_id[:12]}", lock_wait)
    token = lease.token
    renewer = _Renewer(client, token, LOCK_TTL)
    renewer.start()
    try:
        record = applies.submit(client, submission(plan, desired, token))
        if on_submitted is not None:
            on_submitted(record.id)
        return _relay(client, record.id, on_line, until=ACCEPTED, timeout=timeout)
    finally:
        renewer.done.set()
        try:
            lock.release(client, token)
        except CaxtonError:
            pass  # expired or engine gone: the lease frees itself


def follow(
    client: EngineClient, apply_id: str, *, on_line: Line | None = None, until: Literal["accepted", "final"] = "final",
    timeout: float | None = None, after: int = 0,
) -> ApplyOutcome:
    """Relay apply ``apply_id``'s progress lines after line ``after`` until it is accepted or final."""
    view = _relay(client, apply_id, on_line, until=ACCEPTED if until == "accepted" else "final", timeout=timeout,
                  after=after)
    return ApplyOutcome.of(view)


def run(
    client: EngineClient, plan: Plan, desired: DesiredState, *, on_line: Line, detach: bool = False,
    timeout: float | None = None, on_submitted: Callable[[str], None] | None = None,
) -> ApplyOutcome:
    """Submit ``plan`` and (unless ``detach``) follow it to its outcome, within ``timeout`` seconds in all."""
    if not plan.has_changes:
        return ApplyOutcome(None, "nothing")
    began = time.monotonic()
    view = submit(client, plan, desired, on_line=on_line, timeout=timeout, on_submitted=on_submitted)
    if detach or view.status in FINAL:
        return ApplyOutcome.of(view)
    return follow(client, view.id, on_line=on_line, timeout=left(timeout, began), after=last_line(view))


def left(timeout: float | None, began: float) -> float | None:
    """What remains of ``timeout`` seconds counted from ``began`` (monotonic)."""
    return None if timeout is None else max(timeout - (time.monotonic() - began), 0.0)


def last_line(view: api.ApplyView) -> int:
    """The number of the last progress line in ``view`` (to follow on from it)."""
    return max((line.seq for line in view.log), default=0)


UNFINISHED = frozenset({api.ChangeStatus.PENDING, api.ChangeStatus.RUNNING, api.ChangeStatus.PAUSED})


def pending(view: api.ApplySummary) -> list[api.ChangeResult]:
    """The changes of an apply that have not reached their outcome (running or paused rollouts)."""
    return [r for r in view.results if r.status in UNFINISHED]


# --- internals ---------------------------------------------------------------------------------
def _acquire(client: EngineClient, reason: str, wait: float) -> api.LockGrant:
    """The apply lock; while another apply is in its change phase, wait for it (up to ``wait`` s)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return lock.acquire(client, reason=reason, ttl=LOCK_TTL)
        except LockHeld:
            if time.monotonic() >= deadline or not _changing(client):
                raise
            time.sleep(0.1)


def _changing(client: EngineClient) -> bool:
    """Whether the engine's newest apply is making its changes (it releases the lock once accepted)."""
    newest = applies.recent(client, limit=1)
    return bool(newest) and newest[0].status == api.ApplyStatus.RUNNING


def _relay(
    client: EngineClient, apply_id: str, on_line: Line | None, *, until: str, timeout: float | None, after: int = 0,
) -> api.ApplyView:
    deadline = None if timeout is None else time.monotonic() + timeout
    lines: list[api.ApplyLine] = []
    while True:
        try:
            view = applies.get(client, apply_id, after=after, wait=POLL)
        except EngineUnreachable as error:
            raise EngineUnreachable(
                f"{error.message}; apply {apply_id} goes on (or rolls back) on the engine by itself",
                hint=f"follow it with `caxton applies follow {apply_id}` once the engine is back",
            ) from None
        for line in view.log:
            after = max(after, line.seq)
            lines.append(line)
            if on_line is not None:
                on_line(line)
        if view.status in FINAL or (until == ACCEPTED and view.status == ACCEPTED):
            return view.model_copy(update={"log": lines})
        if deadline is not None and time.monotonic() > deadline:
            waiting = pending(view)
            raise ApplyTimeout(
                f"apply {apply_id} is still {view.status} on the engine after {timeout:.0f}s"
                + (f"; waiting for {', '.join(r.id for r in waiting)}" if waiting else ""),
                hint=f"the engine carries on; follow it with `caxton applies follow {apply_id}`, "
                "or raise --timeout",
                details=api.wire(view.model_copy(update={"log": lines})),
            )

