"""Run an apply from the CLI side: take the lock, submit, follow progress, release.

The engine executes the changes; this module only holds the lease (renewed
in a background thread while it follows) and relays the engine's progress
lines to a callback. Called by ``caxton apply`` and the reconcile loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from caxton.client import plans
from caxton.client.engine import EngineClient
from caxton.desired.model import DesiredState
from caxton.errors import CaxtonError, EngineUnreachable
from caxton.spec.plan import Plan

FINAL = frozenset({"succeeded", "failed", "rolled_back", "interrupted"})
LOCK_TTL = 30.0


@dataclass
class ApplyOutcome:
    apply_id: str | None
    status: str  # succeeded, failed, rolled_back, interrupted, detached, nothing
    results: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.results:
            key = result["action"] if result["status"] == "done" else result["status"]
            out[key] = out.get(key, 0) + 1
        return out


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


def run(
    client: EngineClient, plan: Plan, desired: DesiredState, *, on_line: Callable[[dict[str, Any]], None],
    detach: bool = False, timeout: float | None = None,
) -> ApplyOutcome:
    """Apply ``plan`` (whose specs come from ``desired``) and return the engine's outcome."""
    if not plan.has_changes:
        return ApplyOutcome(None, "nothing")
    lease = plans.acquire_lock(client, reason=f"apply plan {plan.plan_id[:12]}", ttl=LOCK_TTL)
    token = lease["token"]
    renewer = _Renewer(client, token, LOCK_TTL)
    renewer.start()
    try:
        record = plans.submit(client, plans.submission(plan, desired, token))
        if detach:
            return ApplyOutcome(record["id"], "detached", record["results"])
        return _follow(client, record["id"], on_line, timeout)
    finally:
        renewer.done.set()
        try:
            plans.release_lock(client, token)
        except CaxtonError:
            pass  # expired or engine gone: the lease frees itself


def _follow(
    client: EngineClient, apply_id: str, on_line: Callable[[dict[str, Any]], None], timeout: float | None
) -> ApplyOutcome:
    deadline = None if timeout is None else time.monotonic() + timeout
    after = 0
    while True:
        try:
            view = plans.apply_status(client, apply_id, after=after, wait=2.0)
        except EngineUnreachable as error:
            raise EngineUnreachable(
                f"{error.message}; apply {apply_id} goes on (or rolls back) on the engine by itself",
                hint="check it with `caxton agents list` once the engine is back; plan again to converge",
            ) from None
        for line in view["log"]:
            after = max(after, int(line["seq"]))
            on_line(line)
        if view["status"] in FINAL:
            return ApplyOutcome(apply_id, view["status"], view["results"])
        if deadline is not None and time.monotonic() > deadline:
            raise CaxtonError(
                f"apply {apply_id} is still running on the engine after {timeout:.0f}s",
                hint="the engine finishes it on its own; raise --timeout to wait longer",
            )
