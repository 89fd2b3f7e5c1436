"""Run an apply from the CLI side: submit it (under the lock), then follow it without the lock.

``submit`` takes the apply lock (waiting a few seconds when another apply is
in its short change phase), submits the plan, relays the engine's progress
lines until every change is performed or accepted (rollouts started), and
releases the lock: the returned view's status is ``progressing`` (rollouts
still running) or final. ``follow`` relays the lines of an apply until its
outcome, holding nothing; it raises ``ApplyTimeout`` after ``timeout``
seconds (the engine carries on). ``caxton apply`` submits and follows
(``--no-wait``: submits only); the reconcile loop submits, records the apply
id and goes on watching; ``caxton applies`` lists, shows and follows applies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from caxton.client import plans
from caxton.client.engine import EngineClient
from caxton.desired.model import DesiredState
from caxton.errors import ApplyTimeout, CaxtonError, EngineUnreachable, LockHeld
from caxton.spec import api
from caxton.spec.api import ACCEPTED, FINAL
from caxton.spec.plan import Plan

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

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.results:
            key = result.action if result.status == api.ChangeStatus.DONE else str(result.status)
            out[key] = out.get(key, 0) + 1
        return out

    @classmethod
    def of(cls, view: api.ApplySummary) -> ApplyOutcome:
        return cls(view.id, view.status, view.results)


class _Renewer(threading.Thread):
    """Renews the lease every third of its ttl until stopped."""

    def __init__(self, client: EngineClient, token: str, ttl: float) -> None:
        super().__init__(name="caxton-lock-renewer", daemon=True)
        self.client, self.token, self.ttl = client, token, ttl
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.ttl / 3):
            try:
                plans.renew_lock(self.client, self.token, self.ttl)
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
        record = plans.submit(client, plans.submission(plan, desired, token))
        if on_submitted is not None:
            on_submitted(record.id)
        return _relay(client, record.id, on_line, until=ACCEPTED, timeout=timeout)
    finally:
        renewer.done.set()
        try:
            plans.release_lock(client, token)
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
    timeout: float | None = None,
) -> ApplyOutcome:
    """Submit ``plan`` and (unless ``detach``) follow it to its outcome."""
    if not plan.has_changes:
        return ApplyOutcome(None, "nothing")
    began = time.monotonic()
    view = submit(client, plan, desired, on_line=on_line, timeout=timeout)
    if detach or view.status in FINAL:
        return ApplyOutcome.of(view)
    return follow(client, view.id, on_line=on_line, timeout=left(timeout, began), after=last_line(view))


def left(timeout: float | None, began: float) -> float | None:
    """What remains of ``timeout`` seconds counted from ``began`` (monotonic)."""
    return None if timeout is None else max(timeout - (time.monotonic() - began), 0.0)


def last_line(view: api.ApplyView) -> int:
    """The number of the last progress line in ``view`` (to follow on from it)."""
    return max((line.seq for line in view.log), default=0)


def recent(client: EngineClient, limit: int = 20) -> list[api.ApplySummary]:
    """The engine's most recent applies, newest first (without their progress lines)."""
    return client.call(api.ApplyList, "GET", "/applies", params={"limit": limit}).applies


def show(client: EngineClient, apply_id: str) -> api.ApplyView:
    """One apply with its results and the progress lines the engine still holds."""
    return plans.apply_status(client, apply_id)


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
            return plans.acquire_lock(client, reason=reason, ttl=LOCK_TTL)
        except LockHeld:
            if time.monotonic() >= deadline or not _changing(client):
                raise
            time.sleep(0.1)


def _changing(client: EngineClient) -> bool:
    """Whether the engine's newest apply is making its changes (it releases the lock once accepted)."""
    newest = recent(client, limit=1)
    return bool(newest) and newest[0].status == api.ApplyStatus.RUNNING


def _relay(
    client: EngineClient, apply_id: str, on_line: Line | None, *, until: str, timeout: float | None, after: int = 0,
) -> api.ApplyView:
    deadline = None if timeout is None else time.monotonic() + timeout
    lines: list[api.ApplyLine] = []
    while True:
        try:
            view = plans.apply_status(client, apply_id, after=after, wait=POLL)
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

