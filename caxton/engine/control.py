"""The control plane of the ``Engine`` facade: the apply lock, applies, history, rollouts, backups, the event stream.

``caxton.engine.core.Engine`` inherits these methods, so the HTTP routes
(``caxton.engine.http``) call one object and never reach into its parts
(the store, the operations, the lock, the apply runner, the rollout
controller, the backup scheduler). Each method delegates to the part that
does the work and returns what the route answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton.engine import backup, history
from caxton.engine.stream import EventHub, Frame, Subscription
from caxton.errors import NotFound
from caxton.spec.api import RolloutChange, StreamKind
from caxton.spec.identity import agent_id

if TYPE_CHECKING:
    from caxton.engine.applies import ApplyRunner
    from caxton.engine.backup_schedule import Backups
    from caxton.engine.lease import ApplyLock
    from caxton.engine.operations import OperationResult, Operations
    from caxton.engine.rollouts.controller import RolloutController
    from caxton.engine.state.records import Source
    from caxton.engine.state.store import Store
    from caxton.spec.project import ProjectConfig


class ControlPlane:
    """The ``Engine``'s control-plane methods (a mixin: the parts are the ``Engine``'s)."""

    #: The apply lock and the plan runner (set by ``Engine.start``).
    lock: ApplyLock
    applies: ApplyRunner
    #: Canary, blue-green, ... rollouts (set by ``Engine.start``).
    rollouts: RolloutController
    backups: Backups
    data_dir: Path
    config: ProjectConfig
    #: The live event hub of ``GET /api/v1/events/stream`` (``caxton.engine.stream``).
    stream: EventHub

    if TYPE_CHECKING:
        @property
        def store(self) -> Store: ...

        @property
        def ops(self) -> Operations: ...

    # --- the apply lock -----------------------------------------------------------------
    def lock_status(self) -> dict[str, Any]:
        lease = self.lock.current()
        return {"held": lease is not None, "lease": lease.public() if lease else None}

    def acquire_lock(self, holder: str, reason: str, ttl: float) -> dict[str, Any]:
        lease = self.lock.acquire(holder, reason, ttl)
        return {"token": lease.token, "lease": lease.public()}

    def renew_lock(self, token: str, ttl: float) -> dict[str, Any]:
        lease = self.lock.renew(token, ttl)
        return {"token": lease.token, "lease": lease.public()}

    def release_lock(self, token: str | None, *, force: bool = False) -> dict[str, Any]:
        released = self.lock.release(token, force=force)
        return {"released": released.public() if released else None}

    # --- applies, history, rollback -----------------------------------------------------
    def submit_apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run a plan's changes (``caxton.engine.applies.ApplyRunner.submit``)."""
        return self.applies.submit(body)

    def recent_applies(self, limit: int = 20) -> dict[str, Any]:
        return self.applies.recent(limit)

    async def follow_apply(self, apply_id: str, *, after: int = 0, wait: float = 0.0) -> dict[str, Any]:
        """An apply and its progress lines after ``after``; ``wait``: long-poll on the event loop (no thread held)."""
        return await self.applies.follow(apply_id, after=after, wait=wait)

    def revisions(self, name: str) -> dict[str, Any]:
        """Every kept revision of ``name``, newest first, with its outcome."""
        return history.history(self.store, self.ops, name)

    def rollback(self, name: str, *, to_version: str | None, to_revision: int | None,
                 source: Source) -> OperationResult:
        return history.rollback(self.store, self.ops, name, to_version=to_version, to_revision=to_revision,
                                source=source)

    # --- rollouts -----------------------------------------------------------------------
    def rollout_status(self, name: str | None, limit: int) -> dict[str, Any]:
        return self.rollouts.status(name, limit)

    def promote(self, name: str, source: Source) -> dict[str, Any]:
        return self.rollouts.promote(name, source)

    def rollout_series(self, name: str) -> dict[str, Any]:
        """Request rate, error rate and p95 per revision over ``name``'s last rollout (charts)."""
        found = self.rollouts.inflight.series_view(agent_id(name))
        if found is None:
            if self.store.agent(agent_id(name)) is None:
                raise self.store.unknown_agent(name)
            raise NotFound(f"agent {name!r} has had no rollout since the engine started",
                           hint="a rollout's series are kept in memory: see `caxton rollout status` for its record")
        return found

    def abort(self, name: str, source: Source) -> dict[str, Any]:
        return self.rollouts.abort(name, source)

    # --- the event stream ---------------------------------------------------------------
    def subscribe(self, agent: str | None) -> Subscription:
        """A live subscription to the engine's frames (of ``agent``, or all), on the running loop."""
        return self.stream.subscribe(agent_id(agent) if agent else None, self.config.server.stream_queue)

    def unsubscribe(self, subscription: Subscription) -> None:
        self.stream.unsubscribe(subscription)

    def stream_backlog(self, agent: str | None, after: int, limit: int) -> list[Frame]:
        """The stored events after id ``after`` (of ``agent``), oldest first, at most ``limit``: a resume."""
        rows = self.store.events(agent_id=agent, after=after, limit=limit, oldest=True)
        return [Frame(StreamKind.EVENT.value, row.agent_id, row.to_dict(), row.id) for row in rows]

    def rollout_snapshots(self, agent: str | None) -> list[Frame]:
        """The rollouts in flight (of ``agent``) as ``change: snapshot`` frames: a stream's first picture."""
        return [self.rollouts.inflight.frame(rollout, RolloutChange.SNAPSHOT, "in flight")
                for rollout in self.rollouts.in_flight() if agent is None or rollout.agent_id == agent]

    # --- backups ------------------------------------------------------------------------
    def backup_now(self) -> dict[str, Any]:
        """Write an archive to ``<data dir>/backups/`` now (after a scheduled one in progress);
        return its manifest, name and path."""
        out = self.data_dir / backup.BACKUP_DIR / backup.default_name()
        manifest = self.backups.run(out, "api")
        return {**manifest, "name": out.name, "path": str(out)}

    def backup_file(self, name: str) -> Path:
        """Where the archive ``name`` is (or would be) in the data directory."""
        return self.data_dir / backup.BACKUP_DIR / name
