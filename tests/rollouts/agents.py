"""WASM agents of the rollout tests: a versioned echo, a faulty one (every 5th message fails), a slow one."""

from __future__ import annotations

from typing import Any

import wasmtime

_MODULE = """
(module
  (import "caxton" "clock_ms" (func $clock (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{{\\"v\\":{version}}}")
  (data (i32.const 64) "{{\\"error\\":\\"boom\\"}}")
  (global $n (mut i32) (i32.const 0))
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func $sleep (param $ms i64) (local $end i64)
    (local.set $end (i64.add (call $clock) (local.get $ms)))
    (block $done (loop $again
      (br_if $done (i64.ge_s (call $clock) (local.get $end)))
      (br $again))))
  (func (export "caxton_handle") (param i32 i32) (result i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (call $sleep (i64.const {sleep_ms}))
    (if (i32.and (i32.const {fail}) (i32.eqz (i32.rem_u (global.get $n) (i32.const 5))))
      (then (return (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 16)))))
    (i64.const {length})))
"""


def module(version: int, *, faulty: bool = False, sleep_ms: int = 0) -> bytes:
    """An agent replying {"v": version}; ``faulty``: every 5th message replies an error; ``sleep_ms``: busy-waits."""
    length = len('{"v":}') + len(str(version))
    text = _MODULE.format(version=version, sleep_ms=sleep_ms, fail=1 if faulty else 0, length=length)
    return bytes(wasmtime.wat2wasm(text))


def spec(name: str, version: int, rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name, "version": f"1.0.{version}", "kind": "wasm", "module": f"{name}.wasm",
        "security_policy": {"allowed_imports": ["caxton.log", "caxton.clock_ms"]},
    }
    if rollout is not None:
        body["rollout"] = rollout
    return body
