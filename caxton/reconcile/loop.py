"""The watch loop: run a pass whenever the desired state or the engine may have drifted apart.

A pass runs (``caxton.reconcile.passes``) when:
- the source has a new revision (a commit on the tracked branch, a file change
  in a plain directory): at once, superseding any retry of an older revision;
- the webhook ``POST /api/v1/reconcile`` fired, or an engine came back after
  being unreachable (``_listen`` long-polls each engine's status endpoint);
- every ``interval`` (jittered), to fetch a remote and to heal drift;
- after a temporary failure (apply failed, engine unreachable), retrying the
  same revision with capped exponential backoff and jitter.
A revision that cannot succeed by retrying (invalid desired state, refused
by the delete-all guard) is held: the engine is left as it is until a new
revision arrives (or the webhook asks again).

A pass never blocks on a rollout: it submits, records the apply id and
returns (``caxton.reconcile.passes``). Between passes, every ``refresh``
seconds, the loop reads each engine again (applies it submitted that ended,
each agent's SYNC/HEALTH against the last desired state) and reports when
something changed, so ``caxton reconcile status`` shows a paused canary, a
finished rollout or a rollback within a couple of seconds. A version whose
rollout rolled back is held (not resubmitted) until its agent's desired
state changes (``caxton.reconcile.tracking``).

The loop never dies on an error. ``run(stop)`` returns once ``stop`` is set,
after finishing the step in progress; the CLI sets it on SIGTERM/SIGINT.
After every pass the status goes to each engine (``caxton.client.reconcile``),
with the passes it has not counted yet. Called by ``caxton reconcile`` and
``caxton up``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from caxton.clock import SYSTEM, Clock
from caxton.client import reconcile as board
from caxton.client.transport import EngineClient
from caxton.errors import CaxtonError
from caxton.desired.model import DesiredState
from caxton.reconcile import passes
from caxton.reconcile.backoff import Backoff, spread
from caxton.reconcile.passes import PassOutcome, Target
from caxton.reconcile.sources import Source
from caxton.reconcile.status import EngineView, LoopStatus, iso
from caxton.reconcile.tracking import Tracker
from caxton.spec.api import ReconcileRun
from caxton.validation.report import diagnostic_line

log = logging.getLogger("caxton.reconcile")

MAX_UNREPORTED = 100


@dataclass(frozen=True)
class Settings:
    interval: float = 30.0
    backoff_base: float = 1.0
    backoff_cap: float | None = None  # default: the interval
    jitter: float = 0.1
    refresh: float = 2.0  # seconds between two reads of the engines' agents (SYNC/HEALTH, applies ended)
    options: passes.Options = field(default_factory=passes.Options)


class Loop:
    """Keeps ``targets`` equal to ``source``. ``once()`` for one pass; ``run(stop)`` to watch."""

    def __init__(
        self, source: Source, targets: list[Target], settings: Settings | None = None, *,
        on_pass: Callable[[PassOutcome], None] | None = None, rng: random.Random | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.source, self.targets = source, targets
        self.clock = clock  # intervals, backoff and the status's timestamps (tests: simulated time)
        self.settings = settings or Settings()
        self.on_pass = on_pass
        self.rng = rng or random.Random()
        cap = self.settings.backoff_cap if self.settings.backoff_cap is not None else self.settings.interval
        self.backoff = Backoff(self.settings.backoff_base, max(cap, self.settings.backoff_base),
                               self.settings.jitter, self.rng)
        self.status = LoopStatus(source.description, source.kind, source.branch, self.settings.interval,
                                 [EngineView(t.url) for t in targets],
                                 started_at=iso(clock.time()))
        self._wake = threading.Event()
        self._reasons: set[str] = set()
        self._guard = threading.Lock()
        self._unreported: dict[str, list[ReconcileRun]] = {t.url: [] for t in targets}
        self._clients: dict[str, EngineClient] = {}
        self._last: str | None = None  # revision of the last pass
        self.trackers: dict[str, Tracker] = {}  # per engine: applies in flight, held agents
        self._desired: dict[str, DesiredState] = {}  # per engine: the desired state of the last pass
        self._held = False
        self._attempts = 0
        self.next_delay = 0.0

    # --- wake-ups from other threads ---------------------------------------------------------
    def poke(self, reason: str) -> None:
        """Ask for a check now (``change``, ``trigger`` or ``reconnect``); safe from any thread."""
        with self._guard:
            self._reasons.add(reason)
        self._wake.set()

    def _take_reasons(self) -> set[str]:
        with self._guard:
            reasons, self._reasons = self._reasons, set()
        return reasons

    # --- one pass ------------------------------------------------------------------------------
    def once(self) -> PassOutcome:
        """Read the current revision and run one pass on it."""
        self.seed()
        began = self.clock.monotonic()
        try:
            revision = self.source.current()
        except CaxtonError as error:
            outcome = self._finish(passes.source_failed(error, self.clock.monotonic() - began), None)
        else:
            outcome = self._finish(self._pass(revision), revision)
        self.report()
        return outcome

    def _pass(self, revision: str) -> PassOutcome:
        self.status.begin()
        self.report()
        began = self.clock.monotonic()
        try:
            return passes.run(self.source, revision, self.targets, self.settings.options, self.trackers,
                              self._desired)
        except Exception as error:
            log.exception("reconcile pass failed unexpectedly")
            return PassOutcome("error", revision, None, f"internal error: {type(error).__name__}: {error}",
                               self.clock.monotonic() - began)

    def _finish(self, outcome: PassOutcome, revision: str | None) -> PassOutcome:
        if revision is not None and revision != self._last:
            self._attempts = 0
        self._last = revision if revision is not None else self._last
        self._held = outcome.outcome in passes.PERMANENT
        self._attempts = self._attempts + 1 if outcome.retry else 0
        self.next_delay = self.delay(outcome)
        self.status.in_flight = self._in_flight()
        self.status.record(outcome, retries=self._attempts, now=self.clock.time())
        self._log(outcome)
        if self.on_pass is not None:
            self.on_pass(outcome)
        return outcome

    def delay(self, outcome: PassOutcome) -> float:
        """Seconds until the next timed pass: backoff after a temporary failure, else the interval."""
        if outcome.retry:
            return self.backoff.delay(self._attempts)
        return spread(self.settings.interval, self.settings.jitter, self.rng)

    # --- the watch loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set; the step in progress is finished first."""
        threads = [threading.Thread(target=self._watch_source, args=(stop,), name="caxton-source-watch", daemon=True)]
        threads += [threading.Thread(target=self._listen, args=(t, stop), name=f"caxton-listen-{i}", daemon=True)
                    for i, t in enumerate(self.targets)]
        for thread in threads:
            thread.start()
        self.seed()
        log.info("reconciling %s into %s every %.0fs", self.source.description,
                 ", ".join(t.url for t in self.targets), self.settings.interval)
        try:
            self._schedule(stop)
        finally:
            stop.set()
            self._wake.set()
            self.status.state, self.status.next_attempt_at = "stopped", None
            self.report()
            for thread in threads:
                thread.join(timeout=0.5)  # daemons: a listener may sit in a long poll
            self.close()
            log.info("reconcile loop stopped")

    def _schedule(self, stop: threading.Event) -> None:
        next_at = self.clock.monotonic()
        refresh_at = next_at + self.settings.refresh
        while not stop.is_set():
            self.clock.wait(self._wake, max(0.0, min(next_at, refresh_at) - self.clock.monotonic()))
            if stop.is_set():
                return
            self._wake.clear()
            reasons = self._take_reasons()
            now = self.clock.monotonic()
            timer = now >= next_at
            if not reasons and not timer:
                if now >= refresh_at:
                    self.refresh()
                    refresh_at = self.clock.monotonic() + self.settings.refresh
                continue
            outcome = self._step(reasons, timer)
            if outcome is None:
                if timer:  # nothing to do (or held): the next attempt moves on, never left in the past
                    next_at = self.clock.monotonic() + spread(self.settings.interval, self.settings.jitter, self.rng)
                    self.status.schedule(self.clock.time() + (next_at - self.clock.monotonic()))
                    self.report()
                continue
            next_at = self.clock.monotonic() + self.next_delay
            refresh_at = self.clock.monotonic() + self.settings.refresh
            self.status.schedule(self.clock.time() + (next_at - self.clock.monotonic()))
            self.report()

    def refresh(self) -> None:
        """Read each engine again: applies that ended, every agent's SYNC/HEALTH; report what changed."""
        if self.status.last_outcome == "unreachable":
            return  # the backoff retries reach for the engine; a refresh would only wait on it too
        changed = False
        for target in self.targets:
            desired = self._desired.get(target.url)
            if desired is None:
                continue
            tracker = self.trackers.setdefault(target.url, Tracker())
            try:
                client = self._client(target)
                tracker.settle(client)
                rows = passes.rows_now(client, desired, tracker, self.settings.options)
            except CaxtonError as error:
                log.debug("refreshing %s failed: %s", target.url, error.message)
                continue
            differs, moved = self.status.show_rows(target.url, rows)
            for row in moved:
                log.info("%s: %s %s %s%s", target.url, row.name, row.sync, row.health,
                         f": {row.reason}" if row.reason else "")
            changed = differs or changed
        in_flight = self._in_flight()
        if in_flight != self.status.in_flight:
            self.status.in_flight, changed = in_flight, True
        if changed:
            before = self.status.state
            self.status.settle()
            if self.status.state != before:
                log.info("now %s", self.status.state)
            self.report()

    def _in_flight(self) -> list[str]:
        return sorted(apply_id for tracker in self.trackers.values() for apply_id in tracker.submitted)

    def _step(self, reasons: set[str], timer: bool) -> PassOutcome | None:
        """Run a pass if one is due; None when there was nothing to do."""
        began = self.clock.monotonic()
        try:
            revision = self.source.current()
        except CaxtonError as error:
            return self._finish(passes.source_failed(error, self.clock.monotonic() - began), None)
        except Exception as error:
            log.exception("reading the source failed unexpectedly")
            failed = CaxtonError(f"reading the source failed: {type(error).__name__}: {error}")
            return self._finish(passes.source_failed(failed, self.clock.monotonic() - began), None)
        new = revision != self._last
        forced = bool(reasons & {"trigger", "reconnect"})
        if not (new or forced or timer):
            return None  # a file event that changed nothing
        if not (new or forced) and self._held:
            return None  # retrying cannot help this revision; wait for a new one
        if new and self._last is not None:
            log.info("new revision %s", _short(revision))
        return self._finish(self._pass(revision), revision)

    # --- threads ---------------------------------------------------------------------------------
    def _watch_source(self, stop: threading.Event) -> None:
        try:
            self.source.watch(lambda: self.poke("change"), stop)
        except Exception:
            log.exception("watching %s failed; relying on the interval", self.source.description)

    def _listen(self, target: Target, stop: threading.Event) -> None:
        """Long-poll the engine's reconcile status: the webhook's triggers, and restarts of the engine."""
        seen_board: str | None = None
        seen = -1
        failures = 0
        with EngineClient(target.url, token=target.token, timeout=board.LONG_POLL + 10) as client:
            while not stop.is_set():
                try:
                    view = board.read(client, triggers_after=seen, wait=board.LONG_POLL if seen_board else 0.0)
                except CaxtonError:
                    failures += 1
                    stop.wait(min(5.0, 0.25 * 2 ** min(failures, 5)))
                    continue
                back = failures > 0 or (seen_board is not None and view.board != seen_board)
                failures = 0
                if view.board != seen_board:
                    seen_board, seen = view.board, view.triggers
                elif view.triggers > seen:
                    seen = view.triggers
                    self.poke("trigger")
                if back:
                    self.poke("reconnect")

    def seed(self) -> None:
        """Carry over what an earlier loop over the same source reported (what each engine has)."""
        for target in self.targets:
            try:
                earlier = board.read(self._client(target)).status or {}
            except CaxtonError:
                continue
            if earlier.get("source") != self.status.source:
                continue
            self.status.last_applied_commit = self.status.last_applied_commit or earlier.get("last_applied_commit")
            self.status.last_success_at = self.status.last_success_at or earlier.get("last_success_at")
            known = {e.get("engine"): e.get("commit") for e in earlier.get("engines") or []}
            for view in self.status.engines:
                view.commit = view.commit or known.get(view.engine)

    # --- reporting -------------------------------------------------------------------------------
    def report(self) -> None:
        """Send the status (and the passes not yet counted) to every engine that answers."""
        status = self.status.to_dict()
        for target in self.targets:
            pending = self._unreported[target.url]
            try:
                board.report(self._client(target), status, pending[:MAX_UNREPORTED])
            except CaxtonError as error:
                log.debug("could not report the status to %s: %s", target.url, error.message)
                continue
            del pending[:MAX_UNREPORTED]

    def _client(self, target: Target) -> EngineClient:
        if target.url not in self._clients:
            self._clients[target.url] = EngineClient(target.url, token=target.token, timeout=10.0)
        return self._clients[target.url]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _count(self, outcome: PassOutcome) -> None:
        run = ReconcileRun(outcome=outcome.outcome, duration_seconds=round(outcome.duration, 6))
        for pending in self._unreported.values():
            pending.append(run)
            del pending[:-MAX_UNREPORTED]

    # --- logs -------------------------------------------------------------------------------------
    def _log(self, outcome: PassOutcome) -> None:
        self._count(outcome)
        commit = _short(outcome.commit or outcome.revision)
        if outcome.outcome in ("applied", "progressing"):
            for result in outcome.engines:
                if result.changes:
                    verb = "applied" if result.outcome == "applied" else "submitted"
                    log.info("%s %s to %s: %s", verb, commit, result.engine, ", ".join(result.changes))
                for row in result.agents:
                    if row.health != "Healthy":
                        log.info("%s: %s %s: %s", result.engine, row.name, row.health, row.reason)
        elif outcome.outcome == "degraded":
            log.warning("revision %s: %s", commit, outcome.message)
        elif outcome.outcome == "in_sync":
            log.debug("%s in sync at %s", ", ".join(t.url for t in self.targets), commit)
        elif outcome.outcome == "invalid":
            log.error("revision %s is invalid; nothing applied (the engine is left as it is):", commit)
            for found in outcome.diagnostics:
                log.error("  %s", diagnostic_line(found, with_hint=True))
        elif outcome.retry:
            log.warning("pass failed (%s): %s; retry %d in %.1fs", outcome.outcome, outcome.message,
                        self._attempts, self.next_delay)
        else:
            log.error("revision %s %s: %s; waiting for a new revision", commit, outcome.outcome, outcome.message)


def _short(revision: str | None) -> str:
    if revision is None:
        return "(unknown)"
    return revision.removeprefix("sha256:")[:12]
