"""Fast calls of the ABI exports, whose signatures ``caxton.sandbox.modules`` has checked.

Also ``get_export``, which finds one export by name. wasmtime-py's ``Func.__call__`` re-reads the function type and converts every
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
    from wasmtime._func import enter_wasm as _enter_wasm

    _RAW: Any = _ffi.wasmtime_val_raw
    _CALL: Any = _ffi.wasmtime_func_call_unchecked
    _EXPORT_GET: Any = _ffi.wasmtime_instance_export_get
    FAST_PATH_AVAILABLE = True
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed wasmtime
    FAST_PATH_AVAILABLE = False


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


def _fast_caller(store: wasmtime.Store, func: wasmtime.Func, arity: int, result: str) -> Caller:
    values = (_RAW * max(arity, 1))()
    func_ref = ctypes.byref(func._func)
    if result not in ("i32", "i64", ""):
        raise ValueError(f"unsupported result type {result!r}")
    args_of = range(arity)

    def call(*args: int) -> int:
        for index in args_of:
            values[index].i32 = args[index]
        with _enter_wasm(store) as trap:
            error = _CALL(store._context(), func_ref, values, len(values), trap)
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
        if result == "i64":
            return int(values[0].i64)
        return int(values[0].i32) if result == "i32" else 0

    return call
