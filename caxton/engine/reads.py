"""The read models of the ``Engine`` facade: health, the state snapshot, agents, their logs and events.

``caxton.engine.core.Engine`` inherits these methods (as it does the control
plane's, ``caxton.engine.control``), so the HTTP routes (``caxton.engine.http``),
the console's pages (``caxton.engine.ui.pages``) and the metrics scrape
(``caxton.metrics.StateCollector``) read one object. Each method reads the
store, the router and the runtimes and returns what the route answers; none
changes anything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton import __version__, metrics
from caxton.engine import states
from caxton.errors import CaxtonError, StoreUnavailable
from caxton.spec import health as vocabulary
from caxton.spec.identity import agent_id
from caxton.spec.state import CONFIG_STATES, WASM_STATES, AgentState, StateSnapshot

if TYPE_CHECKING:
    from caxton.engine.backup_schedule import Backups
    from caxton.engine.logs import AgentLogs
    from caxton.engine.replica.follower import Replica
    from caxton.engine.rollouts.controller import RolloutController
    from caxton.engine.serving.router import Router
    from caxton.engine.state.records import AgentRow
    from caxton.engine.state.store import Store
    from caxton.engine.storage_health import StorageFaults
    from caxton.memory.service import MemoryService
    from caxton.spec.project import ProjectConfig

class ReadModels:
    """The ``Engine``'s read methods (a mixin: the parts are the ``Engine``'s)."""

    config: ProjectConfig
    data_dir: Path
    router: Router
    logs: AgentLogs
    rollouts: RolloutController
    backups: Backups
    storage_faults: StorageFaults
    replica: Replica | None
    memory: MemoryService | None
    memory_error: CaxtonError | None
    ready: bool
    stopping: bool
    started_at: float

    if TYPE_CHECKING:
        @property
        def store(self) -> Store: ...

    def memory_health(self) -> dict[str, Any]:
        if self.memory is not None:
            return self.memory.health()
        if self.memory_error is not None:
            return {"status": vocabulary.UNHEALTHY, "enabled": True, "message": self.memory_error.message,
                    "hint": self.memory_error.hint}
        return {"status": vocabulary.HEALTHY, "enabled": False, "message": "memory is disabled (memory.enabled: "
                "false)", "hint": "set memory.enabled: true in caxton.yaml to use it"}

    def health(self) -> dict[str, Any]:
        memory = self.config.memory.backend if self.config.memory.enabled else "disabled"
        phase = "serving" if self.ready else ("stopping" if self.stopping else "starting")
        status = vocabulary.HEALTHY if self.ready else vocabulary.UNHEALTHY
        return {"status": status, "phase": phase, "memory_backend": memory, "agents": len(self.router.ids())}

    def uptime(self) -> float:
        return time.time() - self.started_at

    def scrape_view(self) -> metrics.ScrapeView:
        """What the scrape-time gauges show (``caxton.metrics.StateCollector``)."""
        memory = self.memory
        rollouts = [
            metrics.RolloutView(agent=r.agent_id, strategy=r.strategy, status=r.status, step=r.step,
                                steps=len(r.steps), weights=dict(r.weights))
            for r in self.rollouts.in_flight()
        ]
        every_state = {("config", state): 0 for state in CONFIG_STATES} | {("wasm", state): 0 for state in WASM_STATES}
        entities, size = memory.gauges() if memory is not None else (None, None)
        return metrics.ScrapeView(
            agents=every_state | self.store.counts(),  # every (kind, state) present, at 0 when empty
            serial=self.store.serial(), uptime_seconds=self.uptime(),
            memory_entities=entities, memory_sqlite_bytes=size,
            memory_entities_limit=self.config.memory.max_entities if memory is not None else None,
            rollouts=rollouts, backup=self.backups.view(),
        )

    def health_detailed(self) -> dict[str, Any]:
        """Everything about the engine's health; while the store does not answer, what is known without it."""
        serial: int | None
        try:
            rows, serial, store = self.store.agents(), self.store.serial(), self._store_view()
        except StoreUnavailable as error:
            rows, serial, store = [], None, self._store_unavailable(error)
        by_state: dict[str, int] = {}
        for row in rows:
            by_state[row.state] = by_state.get(row.state, 0) + 1
        runtimes = {route.agent_id: [s.stats() for s in route.servings()] for route in self.router.routes()}
        degraded = by_state.get(states.FAILED, 0) > 0 or any(
            st.get("circuit") == "open" for stats in runtimes.values() for st in stats
        )
        memory = self.memory_health()
        storage = self.storage_faults.health()
        parts = [vocabulary.DEGRADED if degraded else vocabulary.HEALTHY, storage["status"],
                 vocabulary.HEALTHY if memory["status"] == vocabulary.HEALTHY else vocabulary.DEGRADED,
                 vocabulary.HEALTHY if store["status"] == vocabulary.HEALTHY else vocabulary.DEGRADED]
        live = self.health()
        return {
            **live,
            "status": vocabulary.worst(live["status"], *parts) if self.ready else live["status"],
            "version": __version__, "uptime_seconds": round(self.uptime(), 3), "serial": serial,
            "data_dir": str(self.data_dir), "store": store,
            "agents_by_state": by_state, "runtimes": runtimes, "memory": memory, "storage": storage,
        } | ({"replica": self.replica.view()} if self.replica is not None else {})  # PostgreSQL: leader, syncs

    def _store_view(self) -> dict[str, Any]:
        """Which backend holds the state and where (a PostgreSQL URL without its password), and its migrations."""
        store = self.store
        version, written_by = store.schema_version()
        return {"backend": store.dialect, "path": str(store.path) if store.path is not None else None,
                "location": store.location, "migrations": store.migrations(), "schema_version": version,
                "written_by": written_by, "status": vocabulary.HEALTHY}

    def _store_unavailable(self, error: StoreUnavailable) -> dict[str, Any]:
        """The store while its PostgreSQL server does not answer: where, why, since when (the engine serves on)."""
        store = self.store
        outage = store.outage or {}
        return {"backend": store.dialect, "path": None, "location": store.location, "migrations": [],
                "status": vocabulary.UNHEALTHY, "message": error.message, "hint": error.hint,
                "unavailable_seconds": outage.get("seconds")}

    def snapshot(self, *, specs: bool = True, agent_id: str | None = None) -> StateSnapshot:
        """The live state ``plan`` diffs against; ``specs=False``: every ``spec`` left empty (cheaper);
        ``agent_id``: only that agent (or none)."""
        serial, rows = self.store.snapshot_rows(specs=specs, agent_id=agent_id)
        return StateSnapshot(serial=serial, engine_version=__version__,
                             agents=[self._agent_state(row, revision, spec) for row, revision, spec in rows])

    def _agent_state(self, row: AgentRow, revision: Any, spec: dict[str, Any] | None) -> AgentState:
        route = self.router.get(row.id)
        module_sha = revision.module_sha256 if revision else None
        return AgentState(
            id=row.id, name=row.name, kind=row.kind, version=revision.version if revision else "",
            state=row.state, revision=row.revision or 0, spec=spec or {},
            spec_digest=revision.spec_digest if revision is not None else "",
            applied_spec_digest=row.applied_spec_digest, module_sha256=module_sha,
            traffic=route.traffic() if route else {}, git_commit=row.git_commit, plan_id=row.plan_id,
            updated_at=row.updated_at, rollout=self.rollouts.state_of(row.id),
        )

    def agents(self) -> list[dict[str, Any]]:
        return [_summary(a) for a in self.snapshot().agents]

    def agent_list(self) -> dict[str, Any]:
        """Every agent's summary with the state serial they were read at."""
        return {"serial": self.store.serial(), "agents": self.agents()}

    def agent(self, name: str) -> dict[str, Any]:
        ident = agent_id(name)
        found = self.snapshot(agent_id=ident).agents
        if not found:
            raise self.store.unknown_agent(name)
        state = found[0]
        route = self.router.get(ident)
        return {
            **state.model_dump(mode="json"),
            "runtime": [s.stats() for s in route.servings()] if route else [],
            "revisions": [
                {"number": r.number, "version": r.version, "spec_digest": r.spec_digest, "created_at": r.created_at,
                 "actor": r.actor, "plan_id": r.plan_id, "git_commit": r.git_commit}
                for r in self.store.revisions(ident)
            ],
            "events": [e.to_dict() for e in self.store.events(agent_id=ident, limit=20)],
        }

    def agent_logs(self, name: str, limit: int = 100) -> dict[str, Any]:
        ident = agent_id(name)
        if self.store.agent(ident) is None and not self.logs.tail(ident, 1):
            raise self.store.unknown_agent(name)
        return {"agent": ident, "lines": self.logs.tail(ident, limit)}

    def events(self, *, agent: str | None = None, after: int = 0, limit: int = 100) -> dict[str, Any]:
        ident = agent_id(agent) if agent else None
        rows = self.store.events(agent_id=ident, after=after, limit=limit)
        return {"serial": self.store.serial(), "events": [e.to_dict() for e in rows]}

def _summary(agent: AgentState) -> dict[str, Any]:
    return {
        "id": agent.id, "name": agent.name, "kind": agent.kind, "version": agent.version, "state": agent.state,
        "revision": agent.revision, "traffic": agent.traffic, "updated_at": agent.updated_at,
    }

