"""A WASM agent that holds each message for a while and says which instance ran it, and when.

``hold_module(hold_ms)`` compiles it. Each message busy-waits ``hold_ms`` of wall clock
(``caxton.clock_ms``, read every ~1M loop iterations) and replies
``{"seen":"NNNNNNNNNN","born":"...","start":"...","end":"..."}``: how many messages
this instance has handled (this one included), when its ``caxton_init`` ran, and when
this message began and ended (Unix ms, zero-padded strings). Instances share nothing,
so ``seen`` counts per instance: four overlapping messages each answered with
``seen`` 1 ran in four instances; overlapping [start, end] intervals ran at once.
``parse_hold`` turns a reply into ints.
"""

from __future__ import annotations

from typing import Any

import wasmtime

_TEMPLATE = """
(module
  (import "caxton" "clock_ms" (func $clock (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0)
    "{{\\"seen\\":\\"0000000000\\",\\"born\\":\\"0000000000000\\",\\"start\\":\\"0000000000000\\",\\"end\\":\\"0000000000000\\"}}")
  (global $seen (mut i64) (i64.const 0))
  (global $born (mut i64) (i64.const 0))
  (func $digits (param $at i32) (param $width i32) (param $n i64)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $width)))
      (local.set $width (i32.sub (local.get $width) (i32.const 1)))
      (i32.store8 (i32.add (local.get $at) (local.get $width))
                  (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $n) (i64.const 10)))))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br $next))))
  (func (export "caxton_init") (global.set $born (call $clock)))
  (func (export "caxton_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $len) (i32.const 60000)) (then (i32.const 0)) (else (i32.const 1024))))
  (func (export "caxton_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $start i64) (local $now i64) (local $i i32)
    (global.set $seen (i64.add (global.get $seen) (i64.const 1)))
    (local.set $start (call $clock))
    (local.set $now (local.get $start))
    (block $held (loop $wait
      (br_if $held (i64.ge_u (local.get $now) (i64.add (local.get $start) (i64.const {hold_ms}))))
      (local.set $i (i32.const 1000000))
      (block $spun (loop $spin
        (br_if $spun (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $spin)))
      (local.set $now (call $clock))
      (br $wait)))
    (call $digits (i32.const 9) (i32.const 10) (global.get $seen))
    (call $digits (i32.const 29) (i32.const 13) (global.get $born))
    (call $digits (i32.const 53) (i32.const 13) (local.get $start))
    (call $digits (i32.const 75) (i32.const 13) (local.get $now))
    (i64.const {length})))
"""
_REPLY = ('{"seen":"0000000000","born":"0000000000000","start":"0000000000000",'
          '"end":"0000000000000"}')


def hold_module(hold_ms: int) -> bytes:
    """The agent's binary; each message takes ``hold_ms`` of wall clock."""
    return bytes(wasmtime.wat2wasm(_TEMPLATE.format(hold_ms=hold_ms, length=len(_REPLY))))


def parse_hold(reply: Any) -> dict[str, int]:
    """A reply of the hold agent as ints: seen, born, start, end."""
    assert isinstance(reply, dict) and set(reply) == {"seen", "born", "start", "end"}, reply
    return {key: int(value) for key, value in reply.items()}
