"""One sandboxed instance of an agent module and the ABI v1 call through it.

An ``Instance`` owns a wasmtime Store (memory and table limits, WASI when
granted) and the instance's exports. ``call`` moves one message through
linear memory under a fuel budget and an epoch deadline: ``caxton_alloc(len)``,
write the bytes, ``caxton_handle(ptr, len)`` -> ``(reply_ptr << 32) | reply_len``,
bounds-check and copy the reply out. Every failure is raised as ``Fault`` with
a reason from ``REASONS`` and whether the instance must be discarded (``fatal``).

Called by ``caxton.sandbox.runtime``, which owns threading, health and metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import wasmtime

from caxton.sandbox import fastcall, host
from caxton.spec import abi

#: Why a message failed (``WasmFailure.reason``).
REASONS = (
    "trap", "out_of_fuel", "timeout", "memory_limit", "message_too_large", "reply_too_large",
    "bad_reply", "agent_error", "circuit_open",
)
#: Reasons after which the instance is discarded and restarted.
FATAL_REASONS = frozenset({"trap", "out_of_fuel", "timeout", "memory_limit"})

T = TypeVar("T")
E = TypeVar("E")

U32 = 0xFFFF_FFFF
U64 = 0xFFFF_FFFF_FFFF_FFFF


class Fault(Exception):
    """A message (or an instantiation) failed inside the sandbox."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def fatal(self) -> bool:
        return self.reason in FATAL_REASONS


@dataclass(frozen=True)
class Budget:
    """Per-call limits: fuel units and epoch ticks of wall clock."""

    fuel: int
    ticks: int


class CallResult(NamedTuple):
    reply: bytes
    fuel: int


class Instance:
    """A live instance: store, memory and the ABI exports."""

    def __init__(
        self, pre: wasmtime.InstancePre, engine: wasmtime.Engine, *, memory_limit: int, wasi: bool,
        budget: Budget,
    ) -> None:
        self.memory_limit = memory_limit
        self.store = wasmtime.Store(engine)
        self.store.set_limits(memory_size=memory_limit, instances=1, memories=1, tables=4,
                              table_elements=100_000)
        if wasi:
            self.store.set_wasi(host.wasi_config())
        self.fuel_used = 0
        self.last_memory = 0  # linear memory size after the last successful handle call
        self._meter = fastcall.Meter(self.store)
        self._arm(budget)
        instance = self._guarded(lambda: pre.instantiate(self.store))
        self.fuel_used = budget.fuel - self._meter.left()
        self._memory = fastcall.LinearMemory(
            self.store, _export(self.store, instance, abi.EXPORT_MEMORY, wasmtime.Memory)
        )
        self._alloc = fastcall.make_caller(
            self.store, _export(self.store, instance, abi.EXPORT_ALLOC, wasmtime.Func), 1, "i32"
        )
        self._handle = fastcall.make_caller(
            self.store, _export(self.store, instance, abi.EXPORT_HANDLE, wasmtime.Func), 2, "i64"
        )
        init = fastcall.get_export(self.store, instance, abi.EXPORT_INIT)
        self._init = init if isinstance(init, wasmtime.Func) else None

    def init(self, budget: Budget) -> int:
        """Run the optional ``caxton_init``; returns the fuel it used."""
        init = self._init
        if not isinstance(init, wasmtime.Func):
            return 0
        self._arm(budget)
        self._guarded(lambda: init(self.store))
        return budget.fuel - self._meter.left()

    def call(self, message: bytes, budget: Budget, max_reply: int) -> CallResult:
        """Send one message; returns the reply bytes and the fuel used (raises Fault)."""
        self._arm(budget)
        try:
            reply = self._guarded(lambda: self._exchange(message, max_reply))
        finally:
            self.fuel_used = budget.fuel - self._meter.left()
        return CallResult(reply=reply, fuel=self.fuel_used)

    def memory_bytes(self) -> int:
        return self._memory.size()

    def close(self) -> None:
        self.store.close()

    def _arm(self, budget: Budget) -> None:
        self._meter.arm(budget.fuel, budget.ticks)

    def _exchange(self, message: bytes, max_reply: int) -> bytes:
        ptr = self._alloc(len(message)) & U32
        self._check_alloc(ptr, len(message))
        self._memory.write(ptr, message)
        packed = self._handle(ptr, len(message)) & U64
        reply_ptr, reply_len = packed >> 32, packed & U32
        if reply_len > max_reply:
            raise Fault("reply_too_large", f"reply is {reply_len} bytes, over the limit of {max_reply} bytes")
        size = self.last_memory = self.memory_bytes()
        if reply_ptr + reply_len > size:
            raise Fault("bad_reply", f"caxton_handle returned reply [{reply_ptr}, {reply_ptr + reply_len}), "
                        f"outside linear memory ({size} bytes)")
        return self._memory.read(reply_ptr, reply_len)

    def _check_alloc(self, ptr: int, length: int) -> None:
        if ptr == 0:
            if self._at_limit():
                raise Fault("memory_limit", f"caxton_alloc({length}) returned 0: linear memory is at the "
                            f"limit of {self.memory_limit} bytes")
            raise Fault("bad_reply", f"caxton_alloc({length}) returned 0 (the module is out of memory)")
        size = self.memory_bytes()
        if ptr + length > size:
            raise Fault("bad_reply", f"caxton_alloc({length}) returned {ptr}, outside linear memory "
                        f"({size} bytes)")

    def _at_limit(self) -> bool:
        try:
            return self.memory_bytes() + abi.WASM_PAGE_BYTES > self.memory_limit
        except (AttributeError, wasmtime.WasmtimeError):
            return False

    def _guarded(self, run: Callable[[], T]) -> T:
        try:
            return run()
        except Fault:
            raise
        except wasmtime.Trap as exc:
            raise self._trap_fault(exc) from None
        except wasmtime.WasmtimeError as exc:
            raise self._error_fault(str(exc)) from None
        except host.HostTrap as exc:
            raise Fault("trap", str(exc)) from None

    def _trap_fault(self, exc: wasmtime.Trap) -> Fault:
        code = exc.trap_code
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return Fault("out_of_fuel", "ran out of fuel (the per-message fuel limit)")
        if code == wasmtime.TrapCode.INTERRUPT:
            return Fault("timeout", "exceeded the wall-clock limit (max_execution_time_ms)")
        text = _trap_text(exc)
        if self._at_limit():
            return Fault("memory_limit", f"trapped at the memory limit of {self.memory_limit} bytes: {text}")
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return Fault("trap", "stack overflow (recursion too deep)")
        return Fault("trap", f"trapped: {text}")

    def _error_fault(self, text: str) -> Fault:
        first = text.strip().splitlines()[0] if text.strip() else "unknown error"
        if "memory" in text and ("limit" in text or "exceed" in text):
            return Fault("memory_limit", f"memory limit of {self.memory_limit} bytes refused: {first}")
        return Fault("trap", first)


def _trap_text(exc: wasmtime.Trap) -> str:
    lines = [line for line in exc.message.strip().splitlines() if line.strip()]
    tail = [line for line in lines if "wasm trap" in line or "error while executing" not in line]
    return (tail[-1] if tail else exc.message).strip()


def _export(store: wasmtime.Store, instance: wasmtime.Instance, name: str, kind: type[E]) -> E:
    value = fastcall.get_export(store, instance, name)
    if not isinstance(value, kind):
        raise Fault("trap", f"export {name!r} is not a {kind.__name__}")
    return value
