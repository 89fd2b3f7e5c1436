"""Compiler choice (Cranelift for small modules, Winch for large), export trimming, cache keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import wasmtime

from caxton.errors import SandboxError
from caxton.sandbox import engines, modules, runtime
from caxton.spec.agent import SecurityPolicy
from caxton.rules import wasmbin

ABI = (
    '(memory (export "memory") 1)'
    '(data (i32.const 0) "{\\"ok\\":true}")'
    '(func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))'
    '(func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 11))'
)
needs_winch = pytest.mark.skipif(not engines.WINCH_AVAILABLE, reason="Winch has no backend for this CPU")


def many_exports(functions: int = 40, extra: str = "", statements: int = 1) -> bytes:
    body = " ".join(f"(local.set 0 (i32.mul (local.get 0) (i32.const {k + 3})))" for k in range(statements))
    funcs = " ".join(
        f'(func (export "f{i}") (param i32) (result i32) {body} (i32.mul (local.get 0) (i32.const {i})))'
        for i in range(functions)
    )
    return bytes(wasmtime.wat2wasm(f'(module {ABI} (global (export "g") i32 (i32.const 7)) {funcs} {extra})'))


def test_layout_reads_code_size_and_every_export() -> None:
    layout = wasmbin.read_layout(many_exports(3))
    names = {item.name: item.kind for item in layout.exports}
    assert names == {"memory": "memory", "caxton_alloc": "func", "caxton_handle": "func", "g": "global",
                     "f0": "func", "f1": "func", "f2": "func"}
    assert 0 < layout.code_bytes < 200


def test_only_the_exports_the_host_calls_are_compiled() -> None:
    wasm = many_exports(40)
    loaded = runtime.load_module(wasm, SecurityPolicy())
    assert {f"f{i}" for i in range(40)} <= set(loaded.exports) and loaded.exports["g"] == "global"
    compiled = {item.name for item in loaded.module.exports}
    assert compiled == {"memory", "caxton_alloc", "caxton_handle", "g"}


def test_keep_exports_changes_nothing_when_it_keeps_everything() -> None:
    wasm = many_exports(2)
    assert wasmbin.keep_exports(wasm, wasmbin.read_layout(wasm), lambda item: True) is wasm


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32 - 1])
def test_leb128_round_trips(value: int) -> None:
    encoded = wasmbin.encode_uleb(value)
    assert wasmbin.read_uleb(encoded, 0, len(encoded)) == (value, len(encoded))


@pytest.mark.parametrize("data", [b"", b"\x00asm\x02\x00\x00\x00", b"\x00asm\x01\x00\x00\x00\x07\x05\x01",
                                  b"\x00asm\x01\x00\x00\x00\x07\xff\xff\xff\xff\xff\x01"])
def test_malformed_bytes_are_refused_by_the_reader_and_reported_by_wasmtime(data: bytes) -> None:
    with pytest.raises(wasmbin.MalformedWasm):
        wasmbin.read_layout(data)
    with pytest.raises(SandboxError, match="does not compile"):
        runtime.load_module(data, SecurityPolicy())


@needs_winch
def test_small_modules_use_cranelift_and_large_ones_winch() -> None:
    small = runtime.load_module(many_exports(2), SecurityPolicy())
    assert small.compiler == engines.CRANELIFT
    big = many_exports(300, statements=30)  # ~100 KB of code
    assert wasmbin.read_layout(big).code_bytes > modules.WINCH_ABOVE_CODE_BYTES
    loaded = runtime.load_module(big, SecurityPolicy())
    assert loaded.compiler == engines.WINCH and loaded.engine.compiler == engines.WINCH
    assert loaded.engine is not small.engine


@needs_winch
def test_module_winch_refuses_is_compiled_by_cranelift(monkeypatch: pytest.MonkeyPatch, make_runtime: Any) -> None:
    monkeypatch.setattr(modules, "WINCH_ABOVE_CODE_BYTES", -1)
    tail_call = '(func $t (param i32) (result i32) (return_call $t (local.get 0)))'  # Winch: "not enabled"
    wasm = many_exports(1, tail_call)
    first = runtime.load_module(wasm, SecurityPolicy())
    assert first.compiler == engines.CRANELIFT
    assert runtime.load_module(wasm, SecurityPolicy()).from_cache == "memory"
    assert make_runtime(wasm).handle({"message": "hi"}) == {"ok": True}


@needs_winch
def test_disk_artifacts_are_keyed_by_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wasm = many_exports(3)
    runtime.set_cache_dir(tmp_path)
    modules.clear_memory_cache()
    loaded = {}
    for compiler, threshold in ((engines.CRANELIFT, 1 << 62), (engines.WINCH, -1)):
        monkeypatch.setattr(modules, "WINCH_ABOVE_CODE_BYTES", threshold)
        assert runtime.load_module(wasm, SecurityPolicy()).from_cache == "none"
        modules.clear_memory_cache()  # an engine restart
        loaded[compiler] = runtime.load_module(wasm, SecurityPolicy())
        assert loaded[compiler].from_cache == "disk" and loaded[compiler].compiler == compiler
    assert len(list(tmp_path.glob("*.cwasm"))) == 2


def test_unknown_compiler_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown compiler"):
        engines.get_engine([], compiler="v8")
