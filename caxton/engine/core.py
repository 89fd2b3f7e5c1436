"""The ``Engine`` object: store + router + runtimes + operations, usable in-process.

``caxton server start`` wraps it in the HTTP API (``caxton.engine.http.app``,
``caxton.engine.server``); ``caxton up`` can run it in-process. It owns the
lifecycle (``start``, ``drain``, ``stop``, ``reload``) and the message path
(``send``: router -> runtime, with metrics and logs). The read models the API
returns (health, state snapshot, agent status, events) are in
``caxton.engine.reads``, the control plane in ``caxton.engine.control``.
Mutations go through ``caxton.engine.operations.Operations``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton import metrics
from caxton.clock import SYSTEM, Clock
from caxton.engine import datadir, factory, logsetup, sharing, states
from caxton.engine.applies import ApplyRunner
from caxton.engine.backup_schedule import Backups
from caxton.engine.control import ControlPlane
from caxton.engine.serving.conversations import DurableConversationStore
from caxton.engine.factory import RuntimeContext
from caxton.engine.heartbeat import Heartbeat
from caxton.engine.replica.follower import Replica, others_alive
from caxton.engine.replica.orphans import Orphans
from caxton.engine.state.history_db import HistoryDB
from caxton.engine.lease import ApplyLock
from caxton.engine.logs import AgentLogs
from caxton.engine.intake import Prepared
from caxton.engine.operations import OperationResult, Operations
from caxton.engine.reads import ReadModels
from caxton.engine.rollouts.controller import RolloutController
from caxton.engine.rollouts.inflight import InFlight
from caxton.engine.rollouts.window import Recorder, WindowBook
from caxton.engine.serving.router import Router
from caxton.engine.serving.runtime import ServingRuntime
from caxton.engine.state.records import Source
from caxton.engine.state.store import Store
from caxton.engine.storage_health import StorageFaults
from caxton.engine.stream import EventHub
from caxton.engine.tools import EngineWasmTools
from caxton.errors import (
    AgentFailure,
    CaxtonError,
    PayloadTooLarge,
    Unavailable,
)
from caxton.spec.identity import agent_id
from caxton.spec.project import ProjectConfig

if TYPE_CHECKING:
    from caxton.memory.service import MemoryService

log = logging.getLogger(__name__)
#: A message's reply before it has one (``Engine._handle``: a failure is timed by the wall clock).
_FAILED = object()


class Engine(ReadModels, ControlPlane):
    """One engine over one data directory. ``start`` recovers agents; ``stop`` drains them.

    The one facade the HTTP routes call: the lifecycle and the message path here, the read models
    in ``caxton.engine.reads``, the control plane (lock, applies, history, rollouts, backups) in
    ``caxton.engine.control``.
    """

    def __init__(self, config: ProjectConfig, data_dir: Path, *, clock: Clock = SYSTEM) -> None:
        self.config = config
        self.data_dir = data_dir
        self.logs = AgentLogs()
        #: Routes and conversation pins; its clock times the rollouts too (tests: simulated time).
        self.router = Router(clock)
        #: Per-revision metric windows the rollouts' analysis reads (recorded in ``_handle``).
        self.windows = WindowBook()
        #: Disk full / read-only faults of failed writes (noted by ``caxton.engine.http.app``), for health.
        self.storage_faults = StorageFaults()
        #: The live event stream's hub (``GET /api/v1/events/stream``): fed by the store, rollouts and applies.
        self.stream = EventHub()
        self.started_at = time.time()
        self._store: Store | None = None
        #: Conversation turns and agent log lines (``caxton.engine.state.history_db``), open while started.
        self._history: HistoryDB | None = None
        #: This engine's row in the store's ``engines`` table (the schema version guard), while started.
        self._heartbeat: Heartbeat | None = None
        #: Following the other engines on a PostgreSQL store and leading the rollouts (None on SQLite).
        self.replica: Replica | None = None
        #: What this engine shares with the others on its PostgreSQL store (``caxton.engine.sharing``), while started.
        self._sharing: sharing.Sharing | None = None
        self._ops: Operations | None = None
        self._held: datadir.DataDirLock | None = None
        #: The vector memory (None when disabled or when it could not be opened: see memory_error).
        self.memory: MemoryService | None = None
        self.memory_error: CaxtonError | None = None
        self._warm_up: threading.Thread | None = None
        self.ready = False
        self.stopping = False
        #: Backups on the schedule of ``backups`` in caxton.yaml, and for admins (one at a time).
        self.backups = Backups(self, config.backups)
        #: Called in order by ``reload`` (SIGHUP, ``caxton.engine.serving.reload``) with the new, validated settings.
        self.on_reload: list[Callable[[ProjectConfig], None]] = [self.backups.configure]

    # --- lifecycle ----------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._ops is not None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise Unavailable("the engine is not started", hint="wait for /api/v1/ready")
        return self._store

    @property
    def ops(self) -> Operations:
        if self._ops is None:
            raise Unavailable("the engine is not started", hint="wait for /api/v1/ready")
        return self._ops

    def start(self) -> list[str]:
        """Hold the data directory, open the store and start every agent that was serving; return their ids.

        Raises DataDirHeld when another engine holds the data directory (``caxton.engine.datadir``).
        """
        self._held = datadir.acquire(self.data_dir)
        try:
            return self._start()
        except BaseException:
            if not self.started:  # nothing for stop() to undo: let the data directory go
                self._close_history()
                self._stop_heartbeat()
                if self._store is not None:
                    self._store.close()
                    self._store = None
                self._held.release()
            raise

    def _start(self) -> list[str]:
        from caxton.llm import providers
        from caxton.llm.tools import wasm as wasm_tools

        self._store = Store.open(self.data_dir, self.config.store.url)
        self._store.committed = self.stream.committed
        self.stream.open()
        self._heartbeat = Heartbeat(self._store)
        engine_id = self._heartbeat.start()
        self._history = HistoryDB(self._store)
        self._sharing = sharing.start(self._history, engine_id, self.router, self.windows)
        self.logs.attach(self._history, max_lines=self.config.logging.agent_log_lines,
                         retention=self.config.logging.agent_log_retention)
        factory.use_module_cache(self.data_dir / "module-cache")
        self.memory = self._open_memory()
        talks = self.config.conversations
        context = RuntimeContext(logs=self.logs, providers=providers.build_providers(self.config.llm),
                                 memory=self.memory, templates=self.config.templates, llm=self.config.llm,
                                 conversations=DurableConversationStore(
                                     self._history, idle_ttl=talks.retention, max_turns=talks.max_turns,
                                     max_bytes=talks.max_history_size, min_idle=talks.min_idle))
        context.tool_sources = (wasm_tools.WasmToolSource(EngineWasmTools(self._store, self.send)),)
        inflight = InFlight(self._store, self.router, self.windows, self.logs, self.stream)  # the rollouts in flight
        self._ops = Operations(self._store, self.router, context, self.config.server, guard=inflight)
        self.lock = ApplyLock(self._store)
        self.rollouts = RolloutController(self._store, self.router, self._ops, self.windows, inflight)
        self.applies = ApplyRunner(self._ops, self._store, self.lock, self.rollouts, self.stream, engine_id=engine_id)
        self.started_at = time.time()
        recovered = self._ops.recover()
        if self.config.store.url:  # one of several replicas, maybe
            if not others_alive(self._store, engine_id):
                self.applies.recover()  # an apply another engine runs is not cut short (``Orphans``: if it died)
            self.replica = Replica(self.config.store.url, self._ops, self.rollouts,
                                   orphans=Orphans(self.applies, self._store, engine_id))
            self.replica.start()  # the leader resumes the rollouts in flight; the others mirror them
        else:
            self.applies.recover()
            self.rollouts.recover()
        self.rollouts.run_in_background()
        self.backups.start()
        metrics.SCRAPE.source = self.scrape_view
        self.ready = True
        return recovered

    def drain(self) -> None:
        """The start of a shutdown (SIGTERM): not ready from now on (``/readyz`` answers 503, so a load
        balancer sends new traffic elsewhere) and the event streams end. Everything else is still served
        until the server stops accepting connections (``server.drain_delay`` later: ``caxton.engine.listeners``);
        ``stop`` then drains the runtimes."""
        self.ready = False
        self.stopping = True
        self.stream.close()

    def stop(self) -> None:
        """Refuse new messages, drain in-flight ones, stop runtimes, close the store."""
        self.ready = False
        self.stopping = True
        self.stream.close()  # the open event streams end (``caxton.engine.listeners.Server`` did it already)
        if metrics.SCRAPE.source == self.scrape_view:
            metrics.SCRAPE.source = None
        self.backups.stop()
        if self.replica is not None:
            self.replica.stop()
            self.replica = None
        if self._ops is not None:
            self.rollouts.stop()
            self.applies.stop()
            self.applies.wait_idle()
            self._ops.shutdown()
            self._ops.context.close()
        if self.memory is not None:
            if self._warm_up is not None:
                self._warm_up.join()  # onnxruntime aborts the process if it exits mid-load
            self.memory.close()
            self.memory = None
        self._close_history()
        self._stop_heartbeat()
        if self._store is not None:
            self._store.close()
        self._ops = None
        self._store = None
        if self._held is not None:
            self._held.release()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def _close_history(self) -> None:
        """Write the pending agent log lines and shared samples, and close the history connection."""
        if self._sharing is not None:
            self._sharing.stop()
            self._sharing = None
        if self._history is not None:
            self.logs.detach()
            self._history.close()
            self._history = None

    def reload(self, config: ProjectConfig) -> int:
        """Run every reload hook with ``config``; a failing hook is logged and the others still run.

        ``self.config`` stays the settings the engine started with: what can change
        while running changes through the hooks. Returns how many hooks failed.
        """
        failed = 0
        for hook in list(self.on_reload):
            try:
                hook(config)
            except Exception:  # noqa: BLE001 - one hook's failure must not stop the others
                failed += 1
                log.exception("reload: %s failed; its settings stay as they were", getattr(hook, "__qualname__", hook))
        return failed

    def _open_memory(self) -> MemoryService | None:
        """Open the vector memory when enabled; its model loads in the background.

        A memory that cannot be opened is reported (health, logs) and left out: agents
        without memory keep serving.
        """
        settings = self.config.memory
        if not settings.enabled:
            return None
        from caxton.memory.backend import location
        from caxton.memory.service import MemoryService

        try:
            service = MemoryService(location(settings, self.data_dir, self.config.store.url), settings, load_model=False)
        except CaxtonError as error:
            self.memory_error = error
            log.error("memory unavailable: %s", error)
            return None
        self._warm_up = threading.Thread(target=service.warm_up, name="caxton-memory-warm-up", daemon=True)
        self._warm_up.start()
        return service

    # --- operations ------------------------------------------------------------------------
    def deploy(self, spec_json: Any, module: bytes | None, source: Source | None = None) -> OperationResult:
        return self.ops.deploy(Prepared.of(spec_json, module), source or Source())

    def suspend(self, name: str, source: Source | None = None) -> OperationResult:
        return self.ops.suspend(name, source or Source())

    def resume(self, name: str, source: Source | None = None) -> OperationResult:
        return self.ops.resume(name, source or Source())

    def remove(self, name: str, source: Source | None = None) -> OperationResult:
        return self.ops.remove(name, source or Source())

    # --- messages ----------------------------------------------------------------------------
    def send(
        self, name: str, content: Any, conversation_id: str | None = None, *, size_hint: int | None = None,
    ) -> dict[str, Any]:
        """Send one message to the serving revision of ``name`` and return the reply.

        ``size_hint`` is the request body's size: when it exceeds the agent's
        message limit the content is measured exactly (413 if too large).
        """
        ident = agent_id(name)
        serving = self.router.acquire(ident, conversation_id)
        if serving is None:
            raise self._not_serving(name, ident)
        serving_now = logsetup.AGENT.set((serving.agent_id, serving.revision))  # named by its log lines
        try:
            if size_hint is not None and size_hint > serving.max_message_size:
                _check_size(serving, content)
            return self._handle(serving, content, conversation_id, inline=False)
        finally:
            logsetup.AGENT.reset(serving_now)
            serving.release()

    def send_now(
        self, name: str, content: Any, conversation_id: str | None = None, *, size_hint: int | None = None,
    ) -> dict[str, Any] | None:
        """``send`` for the event loop: the reply, or None when the message must go to ``send`` in a thread.

        None (having done nothing) when the agent has no serving revision (``send`` says why), when placing
        the conversation needs the store (``Router.acquire``), or when its
        runtime has no ``handle_nowait`` or was recently slow (``ServingRuntime.inline``). ``BlockingIOError``
        (having done nothing) when every instance is busy (with messages in threads): retry in a moment,
        or ``send`` in a thread. What runs here is one bounded WASM call: ~35 us, cheaper than a thread hop.
        """
        serving = self.router.acquire(agent_id(name), conversation_id, block=False)
        if serving is None:
            return None
        try:
            if not serving.inline(time.perf_counter()):
                return None
            if size_hint is not None and size_hint > serving.max_message_size:
                _check_size(serving, content)
            return self._handle(serving, content, conversation_id, inline=True)
        finally:
            serving.release()

    def _handle(self, serving: ServingRuntime, content: Any, conversation_id: str | None, *,
                inline: bool) -> dict[str, Any]:
        envelope = {
            "id": _message_id(), "agent": serving.agent_id, "revision": serving.revision,
            "conversation_id": conversation_id, "content": content,
        }
        window = self.windows.get(serving)
        began = time.perf_counter()
        cpu_began = time.thread_time() if inline else 0.0
        reply: Any = _FAILED
        try:
            reply = serving.handle_nowait(envelope) if inline and serving.handle_nowait else serving.handle(envelope)
        except CaxtonError as error:
            self._count_failure(serving, error, window, began)
            raise
        except Exception as error:
            if inline and isinstance(error, BlockingIOError):
                raise  # nothing happened: the caller sends it through the thread pool
            failure = AgentFailure(f"agent {serving.name!r} failed: {type(error).__name__}: {error}")
            self._count_failure(serving, failure, window, began)
            raise failure from error
        finally:
            ended = time.perf_counter()
            if inline:  # the loop's own CPU time (a preemption on a busy machine is not the agent's slowness);
                # the wall time of a failed one (a timeout is the wall clock's verdict)
                serving.timed(ended - began if reply is _FAILED else time.thread_time() - cpu_began, ended)
        elapsed = ended - began
        serving.series.observe(elapsed)
        if window is not None:
            window.record(elapsed, not _tool_failed(serving, reply))
            route = self.router.get(serving.agent_id)
            if route is not None and route.mirror is not None and route.mirror.serving is not serving:
                route.mirror.offer(envelope, reply)
        return {
            "agent": serving.name, "revision": serving.revision, "conversation_id": conversation_id,
            "reply": reply, "duration_ms": round(elapsed * 1000, 3),
        }

    def _count_failure(
        self, serving: ServingRuntime, error: CaxtonError, window: Recorder | None, began: float,
    ) -> None:
        if window is not None and error.revision_fault:  # a client's error is not the revision's failure
            window.record(time.perf_counter() - began, False)
        reason = str(getattr(error, "reason", None) or error.code)
        serving.series.fail(reason)
        self.logs.add(serving.agent_id, "error", f"message failed ({reason}): {error.message}", revision=serving.revision)

    def _not_serving(self, name: str, ident: str) -> CaxtonError:
        if self.stopping:
            return Unavailable("the engine is shutting down", hint="retry once it is back")
        row = self.store.agent(ident)
        if row is None:
            return self.store.unknown_agent(name)
        if states.is_paused(row.kind, row.state):
            return Unavailable(f"agent {row.name!r} is suspended ({row.state})",
                               hint=f"resume it: caxton agents resume {row.id}")
        if row.state == states.FAILED:
            return Unavailable(f"agent {row.name!r} has failed",
                               hint=f"see `caxton agents logs {row.id}`, fix the agent and apply again")
        return Unavailable(f"agent {row.name!r} is not serving ({row.state})", hint="retry in a moment")


def _tool_failed(serving: ServingRuntime, reply: Any) -> bool:
    """A config agent's reply with a tool call that did not succeed: an error sample of its revision in the
    rollout analysis (docs/rollouts.md; the message itself succeeded and the model saw the failure)."""
    calls = reply.get("tool_calls") if serving.kind == "config" and isinstance(reply, dict) else None
    return isinstance(calls, list) and any(call.get("outcome") != "ok" for call in calls)


def _message_id() -> str:
    """A random version-4 UUID as 32 hex digits (``uuid.uuid4().hex``, at a third of its cost)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    return raw.hex()


def _check_size(serving: ServingRuntime, content: Any) -> None:
    size = len(json.dumps(content, ensure_ascii=False).encode("utf-8"))
    if size > serving.max_message_size:
        raise PayloadTooLarge(
            f"message of {size} bytes is larger than {serving.name!r} accepts ({serving.max_message_size} bytes)",
            hint="send a smaller message or raise resource_limits.max_message_size",
        )
