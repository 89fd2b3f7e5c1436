"""The runtime of one WASM agent revision: a small pool of sandboxed instances.

``WasmAgentRuntime`` is what the engine holds per running WASM revision:
``start()`` makes the pool's first instance and runs its ``caxton_init`` (``SandboxError``
on failure), ``handle(envelope)`` sends one JSON message and returns the decoded
JSON reply or raises ``WasmFailure``, ``stop()`` waits for in-flight calls and
frees the stores, ``stats()`` reports health. ``handle`` is thread-safe: each
call takes an idle instance from the pool (``pool_size``, default 1 so one
instance sees every message in order, like an actor); when every live instance is
busy and the pool is not full, it makes another one (its own store, linear memory
and ``caxton_init``: instances share nothing), else it waits for one. A pool
therefore grows only as far as messages actually overlap; each instance has the
revision's fuel, memory and time limits.

A fatal failure (trap, out of fuel, timeout, memory limit) discards the instance;
the next call recreates it after the backoff of ``caxton.sandbox.health``. Too many
consecutive failures open the circuit breaker (``WasmFailure`` reason
``circuit_open``, HTTP 503) until the cool-down has passed. Metrics: the
``WASM_*`` families of ``caxton.metrics``; message counts and latency are the
engine's to record. ``load_module``/``LoadedModule``/``set_cache_dir`` are
re-exported from ``caxton.sandbox.modules``.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime

from caxton import metrics
from caxton.errors import AgentFailure, InvalidInput, SandboxError
from caxton.sandbox import host
from caxton.sandbox.health import Health, HealthSettings, Outcome
from caxton.sandbox.instance import REASONS, Budget, Fault, Instance
from caxton.sandbox.modules import LoadedModule, load_module, set_cache_dir
from caxton.spec import abi
from caxton.spec.agent import SecurityPolicy, WasmResourceLimits, instance_memory_limit
from caxton.spec.jsonvalues import JsonProblem, loads_strict

__all__ = [
    "REASONS", "HealthSettings", "LoadedModule", "WasmAgentRuntime", "WasmFailure", "load_module",
    "set_cache_dir",
]

#: A floor of the guest's fuel burn rate (units/s; ~3.9 G measured on the reference machine): ``worst_case_s``.
FUEL_PER_SECOND = 1e9
#: ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` without building an encoder per message.
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_STATUS = {"circuit_open": 503, "message_too_large": 413, "timeout": 504}
_CODES = {"circuit_open": "circuit_open", "message_too_large": "payload_too_large"}
_VIOLATIONS = frozenset({"out_of_fuel", "timeout", "memory_limit", "message_too_large", "reply_too_large"})
_HINTS = {
    "trap": "the module trapped; see `caxton agents logs {agent}` and fix the module",
    "out_of_fuel": "the message needed more than resource_limits.fuel units; raise it or make the agent cheaper",
    "timeout": "raise resource_limits.max_execution_time_ms or make the agent faster",
    "memory_limit": "raise resource_limits.max_memory_bytes (and security_policy.max_memory_pages)",
    "message_too_large": "send a smaller message or raise resource_limits.max_message_size",
    "reply_too_large": "make the agent reply less or raise resource_limits.max_message_size",
    "bad_reply": "caxton_handle must return (ptr << 32) | len of a UTF-8 JSON reply; see docs/wasm-abi.md",
    "agent_error": "the agent reported this error itself",
    "circuit_open": "retry later; fix the module (see `caxton agents logs {agent}`) and apply a new revision",
}


class WasmFailure(AgentFailure):
    """A message to a WASM agent failed; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, message: str, *, agent: str, revision: int, hint: str | None = None,
                 retry_after: float | None = None) -> None:
        details: dict[str, Any] = {"reason": reason, "agent": agent, "revision": revision}
        if retry_after is not None:
            details["retry_after_s"] = round(retry_after, 3)
        hint = hint if hint is not None else _HINTS.get(reason, "").format(agent=agent) or None
        super().__init__(f"agent {agent} (revision {revision}): {message}", hint=hint, details=details)
        self.reason = reason
        self.retry_after = retry_after
        self.http_status = _STATUS.get(reason, AgentFailure.http_status)
        self.code = _CODES.get(reason, AgentFailure.code)


@dataclass
class _Slot:
    """A place in the pool: a live instance, or the time it may be recreated."""

    instance: Instance | None = None
    restart_at: float = 0.0
    memory_bytes: int = 0
    made: bool = False  # an instance was made in it once (making another is a restart)


@dataclass
class _Counters:
    messages: int = 0
    failures: int = 0
    rejected: int = 0
    restarts: int = 0
    fuel_consumed: int = 0
    in_flight: int = 0
    last_failure: dict[str, Any] | None = None


class WasmAgentRuntime:
    """Instances of one agent revision, with limits, health and metrics."""

    def __init__(
        self,
        module: LoadedModule,
        limits: WasmResourceLimits,
        policy: SecurityPolicy,
        *,
        agent: str,
        revision: int,
        log: Callable[[str, str], None] | None = None,
        pool_size: int = 1,
        health: HealthSettings | None = None,
        max_reply_size: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.module, self.limits, self.policy = module, limits, policy
        self.agent, self.revision = agent, revision
        self.memory_limit = instance_memory_limit(limits, policy)
        self.max_reply_size = limits.max_message_size if max_reply_size is None else max_reply_size
        self._log = log
        self._host = host.HostFunctions(log)
        self._clock = clock
        self._health = Health(settings=health or HealthSettings(), clock=clock)
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._slots = [_Slot() for _ in range(pool_size)]
        self._idle: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        #: Slots no instance was made in yet (the pool grows into them under load).
        self._spare = self._slots[:0:-1]
        self._pre: wasmtime.InstancePre | None = None
        self._state = "new"  # new | running | stopped
        self._labels = (agent, str(revision))
        self._call_budget: Budget | None = None
        self._series = metrics.wasm_series(*self._labels)
        self._published_memory = -1

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Make the first instance and run its ``caxton_init``; raises SandboxError."""
        if self._state != "new":
            raise SandboxError(f"agent {self.agent} revision {self.revision} was already started")
        self._check_initial_memory()
        engine = self.module.engine
        linker = self._host.linker(engine.engine, wasi=self.module.uses_wasi)
        self._pre = linker.instantiate_pre(self.module.module)
        engine.ticker.acquire()
        slot = self._slots[0]
        try:
            slot.instance, slot.made = self._instantiate(), True
            slot.memory_bytes = slot.instance.memory_bytes()
            self._idle.put(slot)
        except Fault as fault:
            self._close_all()
            engine.ticker.release()
            raise self._start_error(fault) from None
        self._state = "running"
        self._series.memory_limit = self.memory_limit
        self._publish_memory()

    def stop(self, timeout_s: float | None = None) -> None:
        """Refuse new messages, wait for in-flight ones (in every instance), free every instance."""
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
            used = len(self._slots) - len(self._spare)  # no slot leaves ``_spare`` once stopped
        wait = timeout_s if timeout_s is not None else self.limits.max_execution_time_ms / 1000 + 5.0
        deadline = time.monotonic() + wait
        collected: list[_Slot] = []
        for _ in range(used):
            try:
                collected.append(self._idle.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break  # a call is stuck past its deadline: never close a store in use
        for slot in collected:
            _close(slot)
            self._idle.put(slot)  # callers still queued for a slot see "stopped" and leave
        self.module.engine.ticker.release()
        self._published_memory = 0
        self._series.memory = 0

    # --- messages ---------------------------------------------------------------

    def handle(self, envelope: dict[str, Any]) -> Any:
        """Send one message; returns the JSON reply or raises WasmFailure."""
        return self._handle(envelope, wait=True)

    @property
    def pool_size(self) -> int:
        """Instances serving in parallel: the messages it runs at once (``caxton.engine.serving.bulkhead``)."""
        return len(self._slots)

    @property
    def worst_case_s(self) -> float:
        """The longest one message can run: its fuel at a slow ``FUEL_PER_SECOND``, or its deadline."""
        return min(self.limits.fuel / FUEL_PER_SECOND, self.limits.max_execution_time_ms / 1000)

    def handle_nowait(self, envelope: dict[str, Any]) -> Any:
        """As ``handle``, but raises ``BlockingIOError`` (having done nothing) instead of waiting.

        It would wait when every instance is busy or the idle one is waiting out its restart
        backoff. What remains is one bounded call (fuel and epoch deadline), so the engine may
        run it on its event loop.
        """
        return self._handle(envelope, wait=False)

    def _handle(self, envelope: dict[str, Any], *, wait: bool) -> Any:
        payload = self._encode(envelope)
        if wait:
            self._admit()
            slot = self._claim()
        else:
            slot = self._take_ready()  # before admitting: a circuit's probe is never admitted in vain
            try:
                self._admit()
            except BaseException:
                self._idle.put(slot)
                raise
        try:
            if self._state != "running":
                raise self._failure("circuit_open", "the runtime stopped before this message ran")
            return self._run(slot, payload)
        finally:
            self._idle.put(slot)
            with self._lock:
                self._counters.in_flight -= 1

    def _claim(self) -> _Slot:
        """An idle slot; else a spare one (its instance made by ``_ready``); else wait for one."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._spare and self._state == "running":
                return self._spare.pop()
        return self._idle.get()

    def _take_ready(self) -> _Slot:
        """An idle slot with a live instance, else ``BlockingIOError`` (a new instance is made in a thread)."""
        try:
            slot = self._idle.get_nowait()
        except queue.Empty:
            raise BlockingIOError("every instance is busy") from None
        if slot.instance is None:
            self._idle.put(slot)
            raise BlockingIOError("the instance is waiting to restart")
        return slot

    def _run(self, slot: _Slot, payload: bytes) -> Any:
        try:
            instance = self._ready(slot)
            self._host.begin_message()
            try:
                result = instance.call(payload, self._budget(), self.max_reply_size)
            except Fault:
                slot.memory_bytes = instance.memory_bytes()
                raise
            finally:
                self._host.end_message()
                self._account_fuel(instance.fuel_used)
            slot.memory_bytes = instance.last_memory
            reply = _decode(result.reply)
        except Fault as fault:
            raise self._failed(slot, fault) from None
        except Exception:
            with self._lock:  # keep the health consistent (a half-open probe must end), then surface it
                self._record("failure", None)
            raise
        self._settle(_outcome_of(reply))
        if isinstance(reply, dict) and "error" in reply:
            raise self._failure("agent_error", f"the agent answered with an error: {_error_text(reply['error'])}")
        return reply

    def _ready(self, slot: _Slot) -> Instance:
        if slot.instance is not None:
            return slot.instance
        wait = slot.restart_at - self._clock()
        if wait > 0:
            time.sleep(wait)
        if self._state != "running":
            raise self._failure("circuit_open", "the runtime stopped while the instance was restarting")
        restart, slot.made = slot.made, True
        slot.instance = self._instantiate()
        if restart:
            with self._lock:
                self._counters.restarts += 1
            self._series.restarted()
            self._emit("info", "instance restarted")
        return slot.instance

    def _instantiate(self) -> Instance:
        assert self._pre is not None, "start() builds the InstancePre"
        budget = self._budget()
        instance = Instance(self._pre, self.module.engine.engine, memory_limit=self.memory_limit,
                            wasi=self.module.uses_wasi, budget=budget)
        try:
            fuel = instance.fuel_used + instance.init(budget)
        except Fault:
            instance.close()
            raise
        self._account_fuel(fuel)
        return instance

    # --- accounting -----------------------------------------------------------------

    def _encode(self, envelope: dict[str, Any]) -> bytes:
        try:
            payload = _to_json(envelope).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"message to agent {self.agent} is not JSON-serializable: {exc}") from None
        if len(payload) > self.limits.max_message_size:
            with self._lock:
                self._counters.rejected += 1
            metrics.WASM_VIOLATIONS.labels(self.agent, "message_too_large").inc()
            raise self._failure("message_too_large", f"message is {len(payload)} bytes, over the limit of "
                                f"{self.limits.max_message_size} bytes")
        return payload

    def _admit(self) -> None:
        with self._lock:
            if self._state != "running":
                raise self._failure("circuit_open", f"the runtime is {self._state}, not running",
                                    hint="the agent revision is not running; check `caxton agents status`")
            if not self._health.admit():
                retry = self._health.retry_after()
                raise self._failure(
                    "circuit_open", f"circuit open after {self._health.consecutive_failures} consecutive "
                    f"failures; retry in {retry:.1f} s", retry_after=retry)
            self._counters.in_flight += 1

    def _failed(self, slot: _Slot, fault: Fault) -> WasmFailure:
        if fault.fatal and slot.instance is not None:
            slot.instance.close()
            slot.instance = None
            slot.memory_bytes = 0
        with self._lock:
            if fault.fatal:
                slot.restart_at = self._clock() + self._health.restart_delay()
            was_open = self._health.circuit == "open"
            self._record("failure", fault)
            opened = not was_open and self._health.circuit == "open"
        if fault.reason in _VIOLATIONS:
            metrics.WASM_VIOLATIONS.labels(self.agent, fault.reason).inc()
        self._publish_memory()
        self._emit("error", f"message failed ({fault.reason}): {fault.message}")
        if opened:
            self._emit("error", f"circuit opened for {self._health.settings.cooldown_s:g} s")
        return self._failure(fault.reason, fault.message)

    def _settle(self, outcome: Outcome) -> None:
        with self._lock:
            self._record(outcome, None)
        self._publish_memory()

    def _record(self, outcome: Outcome, fault: Fault | None) -> None:
        self._counters.messages += 1
        self._health.record(outcome)
        if outcome != "success":
            self._counters.failures += 1
        if fault is not None:
            self._counters.last_failure = {"reason": fault.reason, "message": fault.message, "at": time.time()}

    def _account_fuel(self, fuel: int) -> None:
        if fuel <= 0:
            return
        with self._lock:
            self._counters.fuel_consumed += fuel
        self._series.consumed(fuel)

    def _publish_memory(self) -> None:
        total = sum(slot.memory_bytes for slot in self._slots)
        if total != self._published_memory:
            self._published_memory = total
            self._series.memory = total

    def stats(self) -> dict[str, Any]:
        """Health and usage figures of this revision (for the engine's state and health)."""
        with self._lock:
            c = self._counters
            return {
                "state": self._state, "messages": c.messages, "failures": c.failures,
                "consecutive_failures": self._health.consecutive_failures, "restarts": c.restarts,
                "circuit": self._health.circuit, "retry_after_s": round(self._health.retry_after(), 3),
                "fuel_consumed": c.fuel_consumed, "memory_bytes": sum(s.memory_bytes for s in self._slots),
                "memory_limit_bytes": self.memory_limit, "in_flight": c.in_flight, "rejected": c.rejected,
                "pool_size": len(self._slots), "instances": sum(s.instance is not None for s in self._slots),
                "last_failure": dict(c.last_failure) if c.last_failure else None,
            }

    # --- helpers ---------------------------------------------------------------------

    def _budget(self) -> Budget:
        if self._call_budget is None:
            self._call_budget = self._make_budget()
        return self._call_budget

    def _make_budget(self) -> Budget:
        tick = self.module.engine.ticker.interval_s
        ticks = math.ceil(self.limits.max_execution_time_ms / 1000 / tick) + 1
        return Budget(fuel=self.limits.fuel, ticks=ticks)

    def _check_initial_memory(self) -> None:
        need = self.module.min_memory_pages * abi.WASM_PAGE_BYTES
        if need > self.memory_limit:
            raise SandboxError(
                f"agent {self.agent}: the module starts with {need} bytes of memory, over the limit of "
                f"{self.memory_limit} bytes", hint="raise resource_limits.max_memory_bytes or lower the "
                "module's initial memory", details={"need": need, "limit": self.memory_limit})

    def _start_error(self, fault: Fault) -> SandboxError:
        return SandboxError(
            f"agent {self.agent} (revision {self.revision}) failed to start: {fault.message}",
            hint=_HINTS.get(fault.reason, "").format(agent=self.agent) or None,
            details={"reason": fault.reason, "agent": self.agent, "revision": self.revision})

    def _failure(self, reason: str, message: str, *, hint: str | None = None,
                 retry_after: float | None = None) -> WasmFailure:
        return WasmFailure(reason, message, agent=self.agent, revision=self.revision, hint=hint,
                           retry_after=retry_after)

    def _close_all(self) -> None:
        for slot in self._slots:
            _close(slot)

    def _emit(self, level: str, text: str) -> None:
        if self._log is None:
            return
        try:
            self._log(level, f"[sandbox] {text}")
        except Exception:  # noqa: BLE001 - a failing log sink must not fail the agent's message
            return


def _close(slot: _Slot) -> None:
    if slot.instance is not None:
        slot.instance.close()
        slot.instance = None
    slot.memory_bytes = 0


def _decode(reply: bytes) -> Any:
    try:
        return loads_strict(reply)
    except JsonProblem as exc:
        snippet = reply[:60].decode("utf-8", errors="replace")
        raise Fault("bad_reply", f"reply {exc}: {snippet!r}") from None


def _outcome_of(reply: Any) -> Outcome:
    return "neutral" if isinstance(reply, dict) and "error" in reply else "success"


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and "message" in error:
        error = error["message"]
    text = error if isinstance(error, str) else json.dumps(error)
    return text if len(text) <= 500 else text[:500] + "..."
