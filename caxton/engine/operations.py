"""The engine's mutating operations: deploy, suspend, resume, remove, recover, shut down.

``deploy`` is the one way an agent gets into the engine (the API's
``PUT /api/v1/agents/{name}``; plan/apply drives it). It validates the spec,
builds and starts the new revision's runtime, records the revision, the state
transitions and an event in one store transaction (bumping the serial), then
swaps the router to the new revision and drains the old one. When the new
revision cannot start, the old one keeps serving and the failure is recorded
as an event and raised as a clear error. One operation runs at a time.
The spec arrives parsed (``caxton.engine.intake.Prepared``); what a deploy
writes in the store is in ``caxton.engine.deploy_records``.
Called by ``caxton.engine.core.Engine``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Protocol

from caxton import metrics
from caxton.engine import deploy_records, factory, intake, states, wasm_budget
from caxton.engine.factory import AgentModel, RuntimeContext
from caxton.engine.intake import Prepared
from caxton.engine.serving.router import Route, Router
from caxton.engine.serving.runtime import ServingRuntime
from caxton.engine.state.records import AgentRow, Source, utcnow
from caxton.engine.state.store import Store
from caxton.errors import (
    AgentFailure,
    CaxtonError,
    Conflict,
    LimitExceeded,
    NotFound,
    SandboxError,
)
from caxton.spec.agent import WasmAgent
from caxton.spec.digest import sha256_hex, spec_digest
from caxton.spec.identity import agent_id
from caxton.spec.project import ServerSettings
from caxton.spec.state import SERVING_STATE

log = logging.getLogger(__name__)
ENGINE = Source(actor="engine")


@dataclass(frozen=True)
class OperationResult:
    """What an operation did, as the API returns it."""

    action: str
    agent: str
    name: str
    kind: str
    state: str
    revision: int | None
    previous_revision: int | None
    serial: int
    spec_digest: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Candidate:
    """A new revision started beside the serving one (a rollout's candidate); not routed yet."""

    spec: Any
    serving: ServingRuntime
    number: int
    digest: str
    stable: AgentRow


class _StartFailed(Exception):
    """A revision's runtime could not be built (``stage='build'``) or started (``'start'``)."""

    def __init__(self, stage: str, error: CaxtonError) -> None:
        super().__init__(error.message)
        self.stage = stage
        self.error = error


class ChangeGuard(Protocol):
    """What ``Operations`` asks before it changes an agent."""

    def before_change(self, agent: str, operation: str) -> None:
        """Called with the agent's id and "deploy", "suspend", "resume" or "remove", under the operations'
        lock; raises to refuse the change."""
        ...


class Operations:
    """Deploy, suspend, resume and remove agents; recover and shut down all of them."""

    def __init__(self, store: Store, router: Router, context: RuntimeContext, settings: ServerSettings, *,
                 guard: ChangeGuard) -> None:
        self.store = store
        self.router = router
        self.context = context
        self.settings = settings
        self._lock = threading.RLock()
        #: Asked before deploy/suspend/resume/remove (the engine's: the rollouts in flight,
        #: ``caxton.engine.rollouts.inflight``, which refuse a deploy or cancel their rollout).
        self.guard = guard

    @property
    def lock(self) -> threading.RLock:
        """The one lock every mutation of agents and routes holds (re-entrant)."""
        return self._lock

    def _guard(self, agent: str, operation: str) -> None:
        self.guard.before_change(agent, operation)

    # --- deploy -------------------------------------------------------------------------
    def deploy(self, prepared: Prepared, source: Source) -> OperationResult:
        """Make ``prepared`` (its spec, with its module for WASM agents) the serving revision of its agent."""
        spec, module = prepared.spec, prepared.module
        with self._lock:
            self._guard(spec.id, "deploy")
            module, normal, digest, current = self._prepare(spec, module)
            if current is not None:
                _check_same_kind(current, spec)
                if not prepared.redeploy and self._unchanged(current, digest):
                    return self._result("unchanged", current, previous=current.revision)
            self._check_memory(spec, replacing=spec.id)
            number, serving = self._start_new(current, spec, normal, module, digest, source)
            try:
                row = deploy_records.record_deploy(self.store, current, spec, normal, module, digest, number, source,
                                                  revisions_kept=self.settings.revisions_kept)
            except BaseException:  # not recorded (the store went away meanwhile): the old revision serves on
                _quiet_stop(serving)
                raise
            old = self.router.swap(spec.id, serving)
            self._retire(old)
            metrics.CONFIG_RELOADS.inc()
            metrics.AGENT_RELOADS.labels(spec.id, "success").inc()
            self.context.logs.add(spec.id, "info", f"revision {number} ({spec.version}) serving", revision=number)
            return self._result("deployed", row, previous=current.revision if current else None)

    # --- rollouts: a candidate revision beside the serving one ---------------------------
    def start_candidate(self, prepared: Prepared, source: Source) -> Candidate | OperationResult | None:
        """Start a new revision of a serving agent without routing to it; record its revision.

        None when the agent is not serving (nothing to roll out from): the caller deploys
        immediately; an "unchanged" result when the spec is already serving. Raises like
        ``deploy`` when the revision cannot start. The caller holds ``lock``.
        """
        spec = prepared.spec
        module, normal, digest, current = self._prepare(spec, prepared.module)
        if current is None or not states.is_serving(current.kind, current.state) or self.router.get(spec.id) is None:
            return None
        _check_same_kind(current, spec)
        if not prepared.redeploy and self._unchanged(current, digest):
            return self._result("unchanged", current, previous=current.revision)
        self._check_memory(spec)
        number, serving = self._start_new(current, spec, normal, module, digest, source)
        with self.store.transaction() as tx:
            deploy_records.add_revision(tx, spec, normal, module, digest, source, number)
        self.context.logs.add(spec.id, "info", f"revision {number} ({spec.version}) started beside "
                              f"revision {current.revision}", revision=number)
        return Candidate(spec, serving, number, digest, current)

    def start_revision(self, agent: str, number: int) -> ServingRuntime:
        """Start a stored revision of ``agent`` (a rollout resumed after a restart)."""
        row = self.require(agent)
        try:
            return self._start_stored(replace(row, revision=number))
        except _StartFailed as failed:
            raise failed.error from None

    def promote(self, agent: str, number: int, source: Source, *, message: str) -> AgentRow:
        """Record revision ``number`` (already routed at 100 %) as the serving one. Caller holds ``lock``."""
        current = self.require(agent)
        revision = self.store.revision(current.id, number)
        with self.store.transaction() as tx:
            row = replace(current, revision=number, applied_spec_digest=revision.spec_digest,
                          traffic={str(number): 100}, git_commit=source.git_commit, plan_id=source.plan_id,
                          updated_at=utcnow())
            tx.save_agent(row)
            tx.event("deployed", source, agent_id=row.id, to_state=row.state, revision=number, message=message,
                     data={"spec_digest": revision.spec_digest, "previous_revision": current.revision,
                           "version": revision.version})
            tx.prune_revisions(row.id, self.settings.revisions_kept, protect={number})
        metrics.CONFIG_RELOADS.inc()
        metrics.AGENT_RELOADS.labels(row.id, "success").inc()
        self.context.logs.add(row.id, "info", message, revision=number)
        return row

    def retire_serving(self, serving: ServingRuntime, timeout: float) -> None:
        """Drain one runtime that no longer receives traffic (up to ``timeout`` s), then stop it."""
        if not serving.drain(timeout):
            self.context.logs.add(serving.agent_id, "warning",
                                  f"revision {serving.revision} still had {serving.inflight} message(s) "
                                  f"after {timeout:g}s of draining; stopping it", revision=serving.revision)
        _quiet_stop(serving)

    def _check_memory(self, spec: AgentModel, *, replacing: str | None = None) -> None:
        """Refuse (``LimitExceeded``) a revision of ``spec`` that would pass ``server.max_wasm_memory``.

        Counts every routed revision (a mirror's too), except those of ``replacing``: the agent
        whose serving revisions the new one replaces once it starts.
        """
        used: dict[str, int] = {}
        for route in self.router.routes():
            for serving in route.servings():
                if serving.agent_id != replacing:
                    used[serving.agent_id] = used.get(serving.agent_id, 0) + serving.wasm_memory
        wasm_budget.check(spec.id, wasm_budget.reserved(spec), used,
                          wasm_budget.budget_of(self.settings.max_wasm_memory))

    def digest_of(self, spec: AgentModel, module: bytes | None) -> str:
        """The digest ``spec`` (with ``module``, or the one it pins) would be stored under."""
        return self._prepare(spec, module)[2]

    def _prepare(
        self, spec: AgentModel, module: bytes | None,
    ) -> tuple[bytes | None, dict[str, Any], str, AgentRow | None]:
        """The checked module, the spec's JSON, its digest, and the agent as stored (if any)."""
        module = intake.module_for(spec, module, self.store.blob)
        normal = spec.model_dump(mode="json")
        digest = spec_digest(normal, sha256_hex(module) if module is not None else None)
        return module, normal, digest, self.store.agent(spec.id)

    def _start_new(
        self, current: AgentRow | None, spec: AgentModel, normal: dict[str, Any], module: bytes | None,
        digest: str, source: Source,
    ) -> tuple[int, ServingRuntime]:
        """Start the next revision's runtime; when it cannot start, record that and raise."""
        number = self.store.next_revision(spec.id)
        try:
            return number, self._start(spec, module, number)
        except _StartFailed as failed:
            deploy_records.record_failed_deploy(self.store, self.context.logs, current, spec, normal, module, digest,
                                                number, source, stage=failed.stage, error=failed.error)
            raise failed.error from None

    def _unchanged(self, current: AgentRow, digest: str) -> bool:
        return (
            states.is_serving(current.kind, current.state)
            and current.applied_spec_digest == digest
            and self.router.get(current.id) is not None
        )

    # --- start and retire runtimes ---------------------------------------------------------
    def _start(self, spec: AgentModel, module: bytes | None, number: int) -> ServingRuntime:
        try:
            runtime = factory.build(spec, module, revision=number, context=self.context)
        except CaxtonError as error:
            raise _StartFailed("build", error) from error
        except Exception as error:
            raise _StartFailed("build", _unexpected(spec, error)) from error
        try:
            runtime.start()
        except Exception as error:
            _quiet_stop(runtime)
            cause = error if isinstance(error, CaxtonError) else _unexpected(spec, error)
            raise _StartFailed("start", cause) from error
        return ServingRuntime(
            runtime, agent_id=spec.id, name=spec.name, kind=spec.kind, revision=number,
            max_message_size=factory.max_message_size(spec, self.settings.max_message_size),
            wasm_memory=wasm_budget.reserved(spec),
        )

    def _start_stored(self, row: AgentRow) -> ServingRuntime:
        """Start the runtime of ``row``'s recorded revision (resume, recovery)."""
        if row.revision is None:
            raise _StartFailed("build", NotFound(f"agent {row.id!r} has no revision to run"))
        revision = self.store.revision(row.id, row.revision)
        spec = intake.parse_spec(self.store.spec_of(revision), check_templates=False)
        try:
            self._check_memory(spec)
        except LimitExceeded as error:
            raise _StartFailed("build", error) from None
        module = self.store.blob(revision.module_sha256) if revision.module_sha256 else None
        return self._start(spec, module, revision.number)

    def _retire(self, route: Route | None) -> None:
        """Drain and stop every backend of a route that no longer receives traffic."""
        if route is None:
            return
        for serving in route.servings():
            self.retire_serving(serving, self.settings.drain_timeout)

    # --- suspend, resume, remove ---------------------------------------------------------
    def suspend(self, name: str, source: Source) -> OperationResult:
        with self._lock:
            row = self.require(name)
            self._guard(row.id, "suspend")
            target = states.PAUSED_STATE[row.kind]
            states.check(row.kind, row.state, target)
            with self.store.transaction() as tx:
                row = tx.transition(row, target, source, message="suspended: no new messages")
            self._retire(self.router.remove(row.id))
            self.context.logs.add(row.id, "info", "suspended", revision=row.revision)
            return self._result("suspended", row, previous=row.revision)

    def resume(self, name: str, source: Source) -> OperationResult:
        with self._lock:
            row = self.require(name)
            self._guard(row.id, "resume")
            target = SERVING_STATE[row.kind]
            states.check(row.kind, row.state, target)
            try:
                serving = self._start_stored(row)
            except _StartFailed as failed:
                if isinstance(failed.error, LimitExceeded):  # over the memory budget: it stays suspended
                    raise failed.error from None
                self._fail(row, f"resume failed: {failed.error.message}", source)
                raise failed.error from None
            try:
                with self.store.transaction() as tx:
                    row = tx.transition(row, target, source, message="resumed")
                    row = replace(row, traffic={str(serving.revision): 100})
                    tx.save_agent(row)
            except BaseException:  # not recorded: it stays suspended
                _quiet_stop(serving)
                raise
            self.router.swap(row.id, serving)
            self.context.logs.add(row.id, "info", "resumed", revision=row.revision)
            return self._result("resumed", row, previous=row.revision)

    def remove(self, name: str, source: Source) -> OperationResult:
        with self._lock:
            row = self.require(name)
            self._guard(row.id, "remove")
            self._retire(self.router.remove(row.id))
            metrics.forget_agent(row.id)
            with self.store.transaction() as tx:
                if not states.is_final(row.kind, row.state):
                    for state in states.path(row.kind, row.state, states.ENDED_STATE[row.kind]):
                        row = tx.transition(row, state, source)
                tx.delete_agent(row.id)
                tx.event("removed", source, agent_id=row.id, from_state=row.state, revision=row.revision,
                         message="agent removed (its revisions stay in the history)")
            self.context.conversations.clear(row.id)
            self.context.logs.add(row.id, "info", "removed", revision=row.revision)
            return self._result("removed", row, previous=row.revision)

    def require(self, name: str) -> AgentRow:
        row = self.store.agent(agent_id(name))
        if row is None:
            raise self.store.unknown_agent(name)
        return row

    def _fail(self, row: AgentRow, message: str, source: Source) -> None:
        self.context.logs.add(row.id, "error", message, revision=row.revision)
        with self.store.transaction() as tx:
            tx.transition(row, states.FAILED, source, message=message)

    # --- recovery and shutdown -------------------------------------------------------------
    def recover(self) -> list[str]:
        """Start every agent the store says is serving, at its recorded revision; return their ids."""
        started: list[str] = []
        with self._lock:
            for row in self.store.agents():
                if not states.is_serving(row.kind, row.state):
                    continue
                try:
                    serving = self._start_stored(row)
                except _StartFailed as failed:
                    self._fail(row, f"recovery failed: {failed.error.message}", ENGINE)
                    continue
                self.router.swap(row.id, serving)
                self.context.logs.add(row.id, "info", f"recovered at revision {row.revision}", revision=row.revision)
                started.append(row.id)
        return started

    def shutdown(self) -> None:
        """Drain and stop every runtime (SIGTERM path)."""
        with self._lock:
            for agent in self.router.ids():
                self._retire(self.router.remove(agent))

    # --- helpers ---------------------------------------------------------------------------
    def _result(self, action: str, row: AgentRow, *, previous: int | None) -> OperationResult:
        return OperationResult(
            action=action, agent=row.id, name=row.name, kind=row.kind, state=row.state, revision=row.revision,
            previous_revision=previous, serial=self.store.serial(), spec_digest=row.applied_spec_digest,
        )


def _check_same_kind(current: AgentRow, spec: AgentModel) -> None:
    if current.kind != spec.kind:
        raise Conflict(
            f"agent {current.id!r} is a {current.kind} agent; it cannot become a {spec.kind} agent in place",
            hint="remove it first (a plan does this as a 'replace')",
        )


def _unexpected(spec: AgentModel, error: Exception) -> CaxtonError:
    text = f"unexpected {type(error).__name__}: {error}"
    if isinstance(spec, WasmAgent):
        return SandboxError(text, hint="this is a bug in the sandbox; please report it")
    return AgentFailure(text, hint="this is a bug in the config-agent runtime; please report it")


def _quiet_stop(target: Any) -> None:
    try:
        target.stop()
    except Exception as error:  # noqa: BLE001 - stopping must never fail an operation
        log.warning("stopping a runtime failed: %s", error)
