"""Fast calls of the ABI exports, whose signatures ``caxton.sandbox.modules`` has checked.

Also ``get_export``, which finds one export by name, and ``LinearMemory``, which
copies bytes in and out with one memmove (the public ``Memory.write`` copies twice). wasmtime-py's ``Func.__call__`` re-reads the function type and converts every
value on each call (~40-50 us); the engine's target is >= 20,000 messages/s,
so the two calls per message go through ``wasmtime_func_call_unchecked`` with
a preallocated raw-value array instead (~5 us). That uses wasmtime-py's
internal ``_bindings``/``enter_wasm``; when a wasmtime release moves them,
``make_caller`` falls back to the public ``Func.__call__`` (slower, same
results, and traps surface the same way). Called by ``caxton.sandbox.instance``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime

Caller = Callable[..., int]

try:  # internal API of wasmtime-py (checked against 50.x)
    from wasmtime import _bindings as _ffi
    from wasmtime._extern import wrap_extern as _wrap_extern
    from wasmtime._ffi import dll as _dll
    from wasmtime._func import maybe_raise_last_exn as _raise_host_exception

    _RAW: Any = _ffi.wasmtime_val_raw
    _TRAP_PTR: Any = ctypes.POINTER(_ffi.wasm_trap_t)
    _EXPORT_GET: Any = _ffi.wasmtime_instance_export_get
    # The ctypes functions themselves, not _bindings' one-line Python wrappers around them (one frame
    # less per C call, and a message makes nine of them).
    _CALL: Any = getattr(_ffi, "_wasmtime_func_call_unchecked", _ffi.wasmtime_func_call_unchecked)
    # A ctypes function object of our own (``dll[name]`` makes a new one), answering the address as an int:
    # wasmtime's returns a POINTER whose ``.contents`` and ``addressof`` cost two more objects per access.
    _MEM_DATA: Any = _dll["wasmtime_memory_data"]
    _MEM_DATA.restype = ctypes.c_void_p
    _MEM_DATA.argtypes = _ffi._wasmtime_memory_data.argtypes
    _MEM_SIZE: Any = getattr(_ffi, "_wasmtime_memory_data_size", _ffi.wasmtime_memory_data_size)
    _SET_FUEL: Any = getattr(_ffi, "_wasmtime_context_set_fuel", _ffi.wasmtime_context_set_fuel)
    _GET_FUEL: Any = getattr(_ffi, "_wasmtime_context_get_fuel", _ffi.wasmtime_context_get_fuel)
    _SET_DEADLINE: Any = getattr(_ffi, "_wasmtime_context_set_epoch_deadline",
                                 _ffi.wasmtime_context_set_epoch_deadline)
    FAST_PATH_AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed wasmtime
    FAST_PATH_AVAILABLE = False


class LinearMemory:
    """Size, read and write of one instance's memory; the caller checks bounds first.

    The data pointer is fetched on every access (it moves when memory grows).
    """

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory, *, fast: bool = True) -> None:
        self._store = store
        self._memory = memory
        self._fast = fast and FAST_PATH_AVAILABLE
        self._ref = ctypes.byref(memory._memory)

    def size(self) -> int:
        if self._fast:
            return int(_MEM_SIZE(self._store._context(), self._ref))
        return int(self._memory.data_len(self._store))

    def write(self, offset: int, data: bytes) -> None:
        if self._fast:
            ctypes.memmove(_MEM_DATA(self._store._context(), self._ref) + offset, data, len(data))
        else:
            self._memory.write(self._store, data, offset)

    def read(self, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        if self._fast:
            return ctypes.string_at(_MEM_DATA(self._store._context(), self._ref) + offset, length)
        return bytes(self._memory.read(self._store, offset, offset + length))


class Meter:
    """Fuel and epoch deadline of one store: ``arm`` before a call, ``left`` after it.

    The same as ``Store.set_fuel`` + ``Store.set_epoch_deadline`` and ``Store.get_fuel``,
    with one C call each and a reused out-parameter.
    """

    def __init__(self, store: wasmtime.Store, *, fast: bool = True) -> None:
        self._store = store
        self._fast = fast and FAST_PATH_AVAILABLE
        self._left = ctypes.c_uint64(0)
        self._left_ref = ctypes.byref(self._left)

    def arm(self, fuel: int, ticks: int) -> None:
        if not self._fast:
            self._store.set_fuel(fuel)
            self._store.set_epoch_deadline(ticks)
            return
        context = self._store._context()
        error = _SET_FUEL(context, fuel)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        _SET_DEADLINE(context, ticks)

    def left(self) -> int:
        if not self._fast:
            return self._store.get_fuel()
        error = _GET_FUEL(self._store._context(), self._left_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        return int(self._left.value)


def get_export(store: wasmtime.Store, instance: wasmtime.Instance, name: str, *, fast: bool = True) -> Any:
    """One export of an instance by name, or None.

    ``Instance.exports`` lists every export (O(n^2) in wasmtime's C API: ~0.7 s for a
    module with 2,400 exports), so the fast path asks for the one name directly.
    """
    if not (fast and FAST_PATH_AVAILABLE):
        return instance.exports(store).get(name)
    item = _ffi.wasmtime_extern_t()
    raw = name.encode()
    found = _EXPORT_GET(store._context(), ctypes.byref(instance._instance), ctypes.create_string_buffer(raw),
                        len(raw), ctypes.byref(item))
    return _wrap_extern(item) if found else None


def make_caller(
    store: wasmtime.Store, func: wasmtime.Func, arity: int, result: str, *, fast: bool = True
) -> Caller:
    """A callable ``f(*i32 args) -> int`` for a function of ``arity`` i32 params.

    ``result`` is the type of its single result ("i32" or "i64"), or "" for none (returns 0).
    """
    if not (fast and FAST_PATH_AVAILABLE):
        return _public_caller(store, func)
    return _fast_caller(store, func, arity, result)


def _public_caller(store: wasmtime.Store, func: wasmtime.Func) -> Caller:
    def call(*args: int) -> int:
        result = func(store, *args)
        return int(result) if result is not None else 0

    return call


def _raise_failure(error: Any, trap: Any) -> None:
    """What wasmtime-py's ``enter_wasm`` does: a host function's exception wins, then the trap."""
    if trap:
        trap_obj = wasmtime.Trap._from_ptr(trap)
        _raise_host_exception()
        raise trap_obj
    failure = wasmtime.WasmtimeError._from_ptr(error)
    _raise_host_exception()
    raise failure


def _fast_caller(store: wasmtime.Store, func: wasmtime.Func, arity: int, result: str) -> Caller:
    values = (_RAW * max(arity, 1))()
    func_ref = ctypes.byref(func._func)
    if result not in ("i32", "i64", ""):
        raise ValueError(f"unsupported result type {result!r}")
    args_of = range(arity)
    count = len(values)

    def call(*args: int) -> int:
        for index in args_of:
            values[index].i32 = args[index]
        trap = _TRAP_PTR()
        error = _CALL(store._context(), func_ref, values, count, ctypes.byref(trap))
        if error or trap:
            _raise_failure(error, trap)
        if result == "i64":
            return int(values[0].i64)
        return int(values[0].i32) if result == "i32" else 0

    return call
