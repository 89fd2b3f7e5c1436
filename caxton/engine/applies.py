"""The engine side of ``caxton apply``: run a submitted plan to its outcome.

The CLI submits the plan's changes (with the specs and modules to apply) while
holding the apply lock; the engine checks the plan is fresh for the agents it
changes (no event of any of them since the plan's state serial: changes to
other agents, their rollouts included, never make it stale), validates every
spec first (a bad one refuses the whole submission, nothing applied), then
performs the changes one agent at a time (creates first; WASM agents, which may be
tools, before config agents) in a background thread through
``caxton.engine.operations.Operations``. Only this change phase is
serialised: a submission arriving during another's waits for it a few
seconds (``CHANGE_WAIT``). Once every change is performed or accepted (its
rollout started), the apply is ``progressing`` and other applies may run at
once; it ends ``succeeded``, ``failed``, ``rolled_back``, ``superseded`` (a
newer apply superseded one of its rollouts) or ``interrupted`` when its
rollouts end. Each agent's change is atomic (a new revision serves only once
started), so a CLI killed mid-apply leaves the engine to finish; an engine
killed mid-apply comes back with every agent on its old or new revision (its
rollouts resume) and the apply marked ``interrupted``. An update of an agent
with a rollout in flight follows the Argo Rollouts rule
(``RolloutController.update``). Progress is kept as numbered log lines that
the CLI follows (``GET /api/v1/applies/{id}?after=N&wait=S``): ``follow`` waits for
them on the event loop (a ``Wakeups`` future the apply's thread resolves), so a
long-poll holds no worker thread however many clients follow. Each line also goes to the
engine's live event stream (``caxton.engine.stream``) as an ``event: apply`` frame.

No apply is left ``running`` by a fault. Each record names the engine running it
(``engine_id``): when that engine dies, a live one marks it ``interrupted``
(``interrupt``, from ``caxton.engine.replica.orphans`` on PostgreSQL, or ``recover``
at the next start), with a reason naming the dead engine and which changes landed,
and frees the apply lock its holder still has. When the apply's own thread hits
``StoreUnavailable`` (the database went away) or an unexpected error, the apply stops
at once: its record in memory (what ``caxton apply`` following this engine reads) is
``interrupted`` (the outage) or ``failed`` (an error) with the reason, and the record is
saved, the lock released and the event written once the store answers again
(``_settle``: retried every ``RETRY`` s in the background). A record is never written
again once final, so an engine that finds its apply finished by another stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from caxton.engine import apply_changes as changes
from caxton.engine.lease import ApplyLock
from caxton.engine.operations import Operations
from caxton.engine.state import applies as records
from caxton.engine.state.applies import ApplyRecord, ChangeResult
from caxton.engine.state.records import Source, utcnow
from caxton.engine.state.store import Store
from caxton.engine.stream import EventHub, Frame
from caxton.engine.wakeups import Wakeups
from caxton.errors import CaxtonError, Conflict, NotFound, StalePlan, StoreUnavailable
from caxton.spec.api import FINAL, ApplyStatus, StreamKind

if TYPE_CHECKING:
    from caxton.engine.rollouts.controller import RolloutController

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Not final: making its changes ("running"), or following the rollouts it started ("progressing").
ACCEPTED = ApplyStatus.PROGRESSING.value
#: Outcome of a rollout -> status of its change in the apply.
ROLLOUT_RESULT = {"succeeded": "done", "rolled_back": "rolled_back", "failed": "failed", "cancelled": "failed",
                  "superseded": "superseded"}
MAX_WAIT = 10.0
#: Seconds a submission waits for another apply's change phase before it is refused.
CHANGE_WAIT = 10.0
MAX_LIST = 100
#: Per-change results are written to SQLite at most this often while an apply runs (and at its end):
#: each agent's own change is durable by itself; the record only reports progress.
PERSIST_EVERY = 0.5
KEEP_RECORDS = 50
#: Seconds between two attempts to save a finished apply while the store does not answer.
RETRY = 1.0
#: Seconds between two reads of an apply another engine runs, while a client long-polls it here.
STORED_POLL = 0.5
#: A change's statuses that mean it has its outcome (saved at once: they say what landed).
SETTLED = ("done", "unchanged", "failed", "rolled_back", "superseded", "interrupted")


class ApplyRunner:
    """Accepts plan submissions; performs their changes one apply at a time, follows their rollouts side by side."""

    def __init__(self, ops: Operations, store: Store, lock: ApplyLock, rollouts: RolloutController | None = None,
                 hub: EventHub | None = None, *, engine_id: str | None = None) -> None:
        self.ops = ops
        #: This engine's heartbeat row (``engines.id``), written in each apply it runs.
        self.engine_id = engine_id
        self.hub = hub
        self.rollouts = rollouts
        self.store = store
        self.lock = lock
        self._records: dict[str, ApplyRecord] = {}
        self._changed = threading.Condition()
        self._wakeups = Wakeups()  # long-polls on the event loop (``follow``)
        #: The apply in its change phase (at most one at a time).
        self._changing: ApplyRecord | None = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        #: Finished applies whose final record is saved (``_settle``, retried after an outage).
        self._saved: set[str] = set()

    # --- start-up, and applies of dead engines ----------------------------------------------
    def recover(self) -> list[str]:
        """Mark applies cut short by a crash as interrupted (releasing the lease their holder still has:
        waiting out the ttl would only block the next one); return their ids."""
        return [record.id for record in records.unfinished(self.store)
                if self.interrupt(record, "the engine running it stopped before it ended (found at an engine start)")]

    def interrupt(self, record: ApplyRecord, why: str) -> bool:
        """Finish ``record``, an unfinished apply no engine runs any more, as ``interrupted`` because ``why``;
        free the apply lock its holder still has. False when another engine finished it first."""
        record.reason = f"{why}; {changes.aftermath(record)}"  # (from its status as it was)
        record.status, record.finished_at = "interrupted", utcnow()
        changes.cut_results(record, why)
        if not records.update(self.store, record):
            return False
        released = self.lock.release_held_by(record.holder) if record.holder else None
        freed = f"; the apply lock of {released.holder} was released" if released is not None else ""
        log.warning("apply %s interrupted: %s%s", record.id, record.reason, freed)
        with self.store.transaction() as tx:
            tx.event("apply_interrupted", Source(actor="engine", plan_id=record.plan_id, git_commit=record.git_commit),
                     message=f"apply {record.id} interrupted: {record.reason}{freed}",
                     data={"apply_id": record.id, "engine": record.engine_id})
        return True

    # --- submit -----------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        lease = self.lock.check(str(body.get("lock_token") or ""))
        items = changes.parse(body)
        with self._changed:
            self._wait_for_change_phase()
            self._check_fresh(body.get("engine_serial"), [i.id for i in items])
            record = ApplyRecord(
                id=uuid.uuid4().hex[:12], plan_id=str(body.get("plan_id") or ""), status="running",
                holder=lease.holder, git_commit=body.get("git_commit"), submitted_at=utcnow(),
                results=[ChangeResult(i.id, i.action, i.strategy) for i in items], engine_id=self.engine_id,
            )
            self._persist(record, insert=True)
            self._remember(record)
            self._changing = record
        thread = threading.Thread(target=self._run, args=(record, items), name=f"apply-{record.id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return record.view()

    def _wait_for_change_phase(self) -> None:
        """Wait (holding ``_changed``) until no apply is making its changes; Conflict after CHANGE_WAIT."""
        deadline = time.monotonic() + CHANGE_WAIT
        while self._changing is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                busy = self._changing
                raise Conflict(f"apply {busy.id} (plan {busy.plan_id}) is still making its changes",
                               hint="submit again in a moment (`caxton applies show "
                               f"{busy.id}` shows its progress)")
            self._changed.wait(remaining)

    def _check_fresh(self, plan_serial: Any, agents: list[str]) -> None:
        """Refuse the plan when an agent it changes changed on the engine since the plan was made."""
        serial = self.store.serial()
        if not isinstance(plan_serial, int) or plan_serial > serial:
            raise StalePlan("plan is stale: it was not made against this engine's current state; run plan again",
                            hint=f"the plan was made at engine serial {plan_serial}; the engine is at serial {serial}")
        changed = self.store.changed_since(plan_serial, agents)
        if changed:
            raise StalePlan(f"plan is stale: agent(s) {', '.join(changed)} changed on the engine since it was made; "
                            "run plan again",
                            hint=f"the plan was made at engine serial {plan_serial}; see `caxton agents status "
                            f"{changed[0]}` for what changed")

    # --- follow -----------------------------------------------------------------------------
    def get(self, apply_id: str, *, after: int = 0) -> dict[str, Any]:
        """An apply and its progress lines after ``after`` (``follow`` waits for news first)."""
        with self._changed:
            record = self._records.get(apply_id) or self._load(apply_id)
            return record.view(after)

    async def follow(self, apply_id: str, *, after: int = 0, wait: float = 0.0) -> dict[str, Any]:
        """``get``, waiting on the event loop: a long-poll holds no thread while it waits.

        Returns when the apply is final, has lines after ``after``, or ``wait`` (at most
        ``MAX_WAIT``) s have passed; the view itself is read in a worker thread (a moment:
        the record's lock may be held by a write to the store).
        """
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT)
        while True:
            ticket = self._wakeups.ticket()
            try:
                record = self._records.get(apply_id)  # not in memory: final, unknown or another engine's
                remaining = deadline - time.monotonic()
                if record is None or remaining <= 0 or _news(record, after):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ticket, remaining)
            finally:
                self._wakeups.discard(ticket)
        view = await anyio.to_thread.run_sync(functools.partial(self.get, apply_id, after=after))
        if record is None:  # as stored: another engine runs it (or ran it); poll the store until it changes
            while view["status"] not in FINAL and time.monotonic() + STORED_POLL < deadline:
                await asyncio.sleep(STORED_POLL)
                fresh = await anyio.to_thread.run_sync(functools.partial(self.get, apply_id, after=after))
                if (fresh["status"], fresh["results"]) != (view["status"], view["results"]):
                    return fresh
        return view

    def recent(self, limit: int = 20) -> dict[str, Any]:
        """The newest applies first (their changes' results, without their progress lines)."""
        limit = min(max(limit, 1), MAX_LIST)
        saved = records.recent(self.store, limit)
        with self._changed:
            shown = [self._records.get(record.id) or record for record in saved]
            return {"applies": [record.summary() for record in shown]}

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for the running apply's thread (used at shutdown and in tests)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def stop(self) -> None:
        """The engine stops: finished applies still waiting for the store are left to the next engine."""
        self._closing.set()

    # --- run --------------------------------------------------------------------------------
    def _run(self, record: ApplyRecord, items: list[changes.Item]) -> None:
        """The apply's thread: its changes, then its rollouts; a fault stops it with a final record."""
        try:
            self._changes_then_rollouts(record, items)
        except Exception as error:  # noqa: BLE001 - whatever it is, the apply must not stay running
            self._abandon(record, error)

    def _changes_then_rollouts(self, record: ApplyRecord, items: list[changes.Item]) -> None:
        source = Source(actor=f"apply {record.id} by {record.holder}", plan_id=record.plan_id, git_commit=record.git_commit)
        order = sorted(range(len(items)), key=lambda i: changes.order(items[i]))
        rollouts: list[tuple[ChangeResult, str, float]] = []
        for index in order:  # an exception: ``_abandon`` ends the change phase
            if record.status in FINAL:  # another engine marked it interrupted: no further change
                break
            started = self._one(record, record.results[index], items[index], source)
            if started is not None:
                rollouts.append((record.results[index], started, time.perf_counter()))
        if not rollouts:
            self._finish(record, changes.outcome(record))
        self._accepted(record, len(rollouts))
        if not rollouts:
            return
        pending = {rollout_id: (result, began) for result, rollout_id, began in rollouts}
        while pending:  # each change gets its outcome as soon as its own rollout ends
            for rollout_id in self._ended(set(pending)):
                result, began = pending.pop(rollout_id)
                self._retrying(functools.partial(self._follow, record, result, rollout_id, began))
        self._finish(record, changes.outcome(record))

    def _ended(self, rollout_ids: set[str]) -> set[str]:
        """Some of ``rollout_ids`` that ended (all of them when the engine is stopping)."""
        assert self.rollouts is not None
        rollouts = self.rollouts
        return self._retrying(lambda: rollouts.wait_any(rollout_ids)) or rollout_ids

    def _retrying(self, call: Callable[[], T]) -> T:
        """``call()``, again every ``RETRY`` s while the store does not answer: the rollouts an apply follows
        go on without it (the leader drives them), so an outage only delays their outcome here."""
        while True:
            try:
                return call()
            except StoreUnavailable:
                if self._closing.wait(RETRY):
                    raise

    def _abandon(self, record: ApplyRecord, error: Exception) -> None:
        """The apply's thread failed: ``interrupted`` by an outage, ``failed`` by an error; saved when it can be."""
        if isinstance(error, StoreUnavailable):
            status, why = "interrupted", f"the store became unavailable: {error.message}"
        else:
            log.error("apply %s failed", record.id, exc_info=error)
            status, why = "failed", f"internal error: {type(error).__name__}: {error}"
        with self._changed:
            if self._changing is record:
                self._changing = None
            if record.status not in FINAL:
                record.reason = f"{why}; {changes.aftermath(record)}"
                changes.cut_results(record, why)
        self._finish(record, status)

    def _accepted(self, record: ApplyRecord, rollouts: int) -> None:
        """The change phase is over: other applies may submit; the record is progressing (or final)."""
        with self._changed:
            if self._changing is record:
                self._changing = None
            if record.status not in FINAL:
                record.status = ACCEPTED
                record.log.append({"seq": len(record.log) + 1, "at": utcnow(), "agent": None, "action": None,
                                   "status": ACCEPTED,
                                   "message": f"every change accepted; {rollouts} rollout(s) in progress"})
                with contextlib.suppress(StoreUnavailable):  # progress only: its rollouts go on
                    self._persist(record)
                self._said(record)
            self._changed.notify_all()
            self._wakeups.notify()

    def _follow(self, record: ApplyRecord, result: ChangeResult, rollout_id: str, began: float) -> None:
        """Wait for a rollout this apply started; its outcome becomes the change's status."""
        assert self.rollouts is not None
        rollout = self.rollouts.wait(rollout_id)  # StoreUnavailable: ``_retrying`` calls again
        result.duration_ms = round((time.perf_counter() - began) * 1000, 1)
        if rollout.active:
            self._update(record, result, "interrupted", f"the engine stopped during rollout {rollout_id}; "
                         "it resumes (or rolls back) when the engine starts again")
            return
        result.revision = rollout.candidate_revision if rollout.status == "succeeded" else rollout.stable_revision
        status = ROLLOUT_RESULT.get(rollout.status, "failed")
        self._update(record, result, status, f"rollout {rollout_id} {rollout.status.replace('_', ' ')}: "
                     f"{rollout.reason}; revision {result.revision} serving")

    def _one(self, record: ApplyRecord, result: ChangeResult, item: changes.Item, source: Source) -> str | None:
        """Perform one change; return the id of the rollout it started, if any."""
        self._update(record, result, "running", changes.starting(item), save=True)  # says which one was cut
        if record.status in FINAL:  # saving it found the apply ended by another engine: not made
            return None
        started = time.perf_counter()
        try:
            outcome = self._perform(record, result, item, source)
        except StoreUnavailable as error:  # the apply stops: every other change would be refused too
            result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
            self._update(record, result, "interrupted", f"the store became unavailable while making it (it "
                         f"landed whole or not at all; `caxton plan` shows which): {error.message}")
            raise
        except CaxtonError as error:
            result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
            self._update(record, result, "failed", error.message + (f" (hint: {error.hint})" if error.hint else ""))
            return None
        except Exception as error:
            log.exception("apply %s: %s failed", record.id, item.id)
            result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
            self._update(record, result, "failed", f"internal error: {type(error).__name__}: {error}")
            return None
        result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        result.revision = outcome.get("revision")
        if outcome.get("action") == "rollout":
            result.duration_ms = None  # set when the rollout ends; its progress lines come from the controller
            return str(outcome["rollout"])
        status = "unchanged" if outcome.get("action") == "unchanged" else "done"
        self._update(record, result, status, changes.finished(item, outcome))
        return None

    def _perform(self, record: ApplyRecord, result: ChangeResult, item: changes.Item, source: Source) -> dict[str, Any]:
        if item.action == "delete":
            return self.ops.remove(item.id, source).to_dict()
        if item.action == "replace" and self.store.agent(item.id) is not None:
            self.ops.remove(item.id, source)
        if item.strategy == "resume" and self._paused(item.id):
            return self.ops.resume(item.id, source).to_dict()
        if item.action == "update" and self.rollouts is not None:
            def progress(status: str, message: str) -> None:
                self._update(record, result, status if status in ("running", "paused") else result.status,
                             message)

            return self.rollouts.update(item.spec(), source, strategy=item.strategy, apply_id=record.id,
                                        listener=progress)
        return self.ops.deploy(item.spec(), source).to_dict()

    def _paused(self, agent: str) -> bool:
        from caxton.engine import states

        row = self.store.agent(agent)
        return row is not None and states.is_paused(row.kind, row.state)

    # --- bookkeeping -------------------------------------------------------------------------
    def _update(self, record: ApplyRecord, result: ChangeResult, status: str, message: str, *,
                save: bool = False) -> None:
        """A change's new status and progress line; saved at once when it has its outcome (or ``save``)."""
        with self._changed:
            result.status, result.message = status, message
            record.log.append({"seq": len(record.log) + 1, "at": utcnow(), "agent": result.id,
                               "action": result.action, "status": status, "message": message,
                               "revision": result.revision, "duration_ms": result.duration_ms})
            if record.status not in FINAL and (save or status in SETTLED
                                               or time.monotonic() - record.persisted_at >= PERSIST_EVERY):
                with contextlib.suppress(StoreUnavailable):  # progress only: the apply's end is saved for sure
                    self._persist(record)
            self._changed.notify_all()
            self._wakeups.notify()
            self._said(record)

    def _finish(self, record: ApplyRecord, status: str) -> None:
        """The apply ends with ``status`` (unless another engine ended it): at once in memory, then saved."""
        with self._changed:
            if record.status in FINAL:
                return
            record.status, record.finished_at = status, utcnow()
            counts = {s: sum(1 for r in record.results if r.status == s)
                      for s in ("done", "unchanged", "failed", "rolled_back", "superseded", "interrupted")}
            message = f"apply {status}" + (f": {record.reason}" if record.reason else "")
            record.log.append({"seq": len(record.log) + 1, "at": record.finished_at, "agent": None, "action": None,
                               "status": status, "message": message, "counts": counts})
            self._changed.notify_all()
            self._wakeups.notify()
            self._said(record)
        summary = (f"apply {record.id} {status}: {counts['done']} changed, {counts['failed']} failed, "
                   f"{counts['rolled_back']} rolled back, {counts['superseded']} superseded"
                   + (f"; {record.reason}" if record.reason else ""))
        try:
            self._settle(record, summary, counts)
        except StoreUnavailable as error:
            log.warning("apply %s %s; saving it once the store answers again (%s)", record.id, status, error.message)
            threading.Thread(target=self._settle_later, args=(record, summary, counts), name=f"apply-{record.id}-settle",
                             daemon=True).start()

    def _settle_later(self, record: ApplyRecord, summary: str, counts: dict[str, int]) -> None:
        try:
            self._retrying(functools.partial(self._settle, record, summary, counts))
        except StoreUnavailable:
            log.warning("apply %s could not be saved before the engine stopped: the next engine to look marks it "
                        "interrupted", record.id)
        except Exception:
            log.exception("saving apply %s failed", record.id)
        else:
            log.info("apply %s saved as %s", record.id, record.status)

    def _settle(self, record: ApplyRecord, summary: str, counts: dict[str, int]) -> None:
        """Save a finished apply, free the apply lock its holder may still have (an outage kept the client
        from releasing it) and record the event; StoreUnavailable when the store does not answer."""
        if record.id not in self._saved:  # (a retry after a later step failed skips it)
            if not records.update(self.store, record):
                return  # another engine finished it (and wrote its event)
            self._saved.add(record.id)
        if record.reason and record.holder:
            self.lock.release_held_by(record.holder)
        with self.store.transaction() as tx:
            tx.event("apply_finished", Source(actor=f"apply {record.id}", plan_id=record.plan_id,
                                              git_commit=record.git_commit),
                     message=summary, data={"apply_id": record.id, "status": record.status, "counts": counts})
        self._saved.discard(record.id)

    def _said(self, record: ApplyRecord) -> None:
        """The record's last line to the live event stream (``caxton.spec.api.ApplyProgress``)."""
        if self.hub is None or not self.hub.listening or not record.log:
            return
        line = dict(record.log[-1])
        self.hub.publish(Frame(StreamKind.APPLY.value, line.get("agent"), {
            "apply_id": record.id, "plan_id": record.plan_id, "status": record.status,
            "git_commit": record.git_commit, "line": line}))

    def _persist(self, record: ApplyRecord, *, insert: bool = False) -> None:
        record.persisted_at = time.monotonic()
        if insert:
            records.insert(self.store, record)
        elif not records.update(self.store, record) and record.status not in FINAL:
            self._taken(record)

    def _taken(self, record: ApplyRecord) -> None:
        """Another engine marked this apply interrupted (it took this one for dead): the stored end wins."""
        stored = records.load(self.store, record.id)
        if stored is None or stored.status not in FINAL:
            return
        log.warning("apply %s was ended by another engine (%s); making no further change", record.id, stored.reason)
        record.status, record.finished_at, record.reason = stored.status, stored.finished_at, stored.reason
        record.log.append({"seq": len(record.log) + 1, "at": utcnow(), "agent": None, "action": None,
                           "status": record.status, "message": f"apply {record.status}: {record.reason}"})

    def _remember(self, record: ApplyRecord) -> None:
        self._records[record.id] = record
        for old in list(self._records)[:-KEEP_RECORDS]:
            if self._records[old].status in FINAL:
                del self._records[old]

    def _load(self, apply_id: str) -> ApplyRecord:
        record = records.load(self.store, apply_id)
        if record is None:
            raise NotFound(f"no apply {apply_id!r} on this engine", hint="list the recent ones: `caxton applies list`")
        return record


def _news(record: ApplyRecord, after: int) -> bool:
    """Whether a follower at line ``after`` has something to read (lines are numbered 1, 2, ...)."""
    log = record.log
    return record.status in FINAL or (bool(log) and log[-1]["seq"] > after)
