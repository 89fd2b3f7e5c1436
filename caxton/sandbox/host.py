"""Host functions linked into agent instances (the ``caxton`` import module of ABI v1).

- ``caxton.log(level: i32, ptr: i32, len: i32)``: a UTF-8 line from the guest's
  memory to the runtime's log callback. Levels: 0 debug, 1 info, 2 warn,
  3 error (anything else is info). Lines are cut at ``MAX_LOG_BYTES`` and at
  most ``max_lines`` are kept per message; the rest are counted and reported
  as one warning, so a chatty module cannot flood the engine's log.
- ``caxton.clock_ms() -> i64``: Unix time in milliseconds.
- WASI preview 1 only when the policy grants file or network access, and then
  without preopened directories, environment or arguments.

Only imports that ``caxton.sandbox.modules`` accepted reach the linker. Called
by ``caxton.sandbox.runtime``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import wasmtime

from caxton.spec import abi

LogCallback = Callable[[str, str], None]

LOG_LEVELS: dict[int, str] = {0: "debug", 1: "info", 2: "warn", 3: "error"}
MAX_LOG_BYTES = 4096
DEFAULT_MAX_LOG_LINES = 100


class HostTrap(Exception):
    """A host function refused the guest's call (the guest traps with this message)."""


class HostFunctions:
    """The host side of one runtime: its log sink and per-message log budget."""

    def __init__(self, log: LogCallback | None, *, max_lines: int = DEFAULT_MAX_LOG_LINES) -> None:
        self._log = log
        self._max_lines = max_lines
        self._local = threading.local()

    def begin_message(self) -> None:
        """Reset this thread's log budget (one call per message, around the guest call)."""
        self._local.lines = 0
        self._local.dropped = 0

    def end_message(self) -> None:
        """Report lines dropped over the budget during this thread's message."""
        dropped = getattr(self._local, "dropped", 0)
        if dropped:
            self._emit("warn", f"{dropped} log lines dropped (limit {self._max_lines} per message)")
        self._local.dropped = 0

    def linker(self, engine: wasmtime.Engine, *, wasi: bool) -> wasmtime.Linker:
        """A linker with the host functions (and WASI when granted)."""
        linker = wasmtime.Linker(engine)
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        linker.define_func(abi.HOST_MODULE, "log", wasmtime.FuncType([i32, i32, i32], []), self._guest_log,
                           access_caller=True)
        linker.define_func(abi.HOST_MODULE, "clock_ms", wasmtime.FuncType([], [i64]), _clock_ms)
        if wasi:
            linker.define_wasi()
        return linker

    def _guest_log(self, caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        lines = getattr(self._local, "lines", 0)
        if lines >= self._max_lines:
            self._local.dropped = getattr(self._local, "dropped", 0) + 1
            return
        self._local.lines = lines + 1
        text = _read_text(caller, ptr & 0xFFFFFFFF, length & 0xFFFFFFFF)
        self._emit(LOG_LEVELS.get(level, "info"), text)

    def _emit(self, level: str, text: str) -> None:
        if self._log is None:
            return
        try:
            self._log(level, text)
        except Exception:  # noqa: BLE001 - a failing log sink must not fail the agent's message
            return


def _read_text(caller: wasmtime.Caller, ptr: int, length: int) -> str:
    memory = caller.get(abi.EXPORT_MEMORY)
    if not isinstance(memory, wasmtime.Memory):
        raise HostTrap("caxton.log called by a module that exports no memory")
    size = memory.data_len(caller)
    if ptr + length > size:
        raise HostTrap(f"caxton.log: text [{ptr}, {ptr + length}) is outside linear memory ({size} bytes)")
    cut = min(length, MAX_LOG_BYTES)
    text = bytes(memory.read(caller, ptr, ptr + cut)).decode("utf-8", errors="replace")
    return text if cut == length else text + f"... ({length - cut} more bytes)"


def _clock_ms() -> int:
    return time.time_ns() // 1_000_000


def wasi_config() -> wasmtime.WasiConfig:
    """WASI with nothing: no preopened directories, no environment, no arguments."""
    return wasmtime.WasiConfig()
