"""Loading, caching, calling and stopping well-formed modules."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from caxton import metrics
from caxton.errors import InvalidInput, SandboxError
from caxton.sandbox import engines, fastcall, modules, runtime
from caxton.spec.agent import SecurityPolicy, WasmResourceLimits

Wat = Callable[[str], bytes]


def _module(body: str, memory: str = '(memory (export "memory") 1)') -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {memory} {body})"))


ABI_FUNCS = (
    '(func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))'
    '(func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 0))'
)


SCORER = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "wasm" / "scorer.wasm"


def test_scorer_answers_logs_its_init_and_reports_stats(make_runtime: Any) -> None:
    logs: list[tuple[str, str]] = []
    scorer = make_runtime(SCORER.read_bytes(), agent="scorer-2", logs=logs)
    assert logs == [("info", "scorer ready")]
    assert scorer.handle({"message": "hello"}) == {"agent": "scorer", "score": 19}
    stats = scorer.stats()
    assert stats["messages"] == 1 and stats["failures"] == 0 and stats["circuit"] == "closed"
    assert stats["memory_bytes"] == 65536 and stats["in_flight"] == 0 and stats["fuel_consumed"] > 0
    labels = {"agent": "scorer-2", "revision": "1"}
    assert metrics.sample_value("caxton_wasm_fuel_consumed_total", labels) == stats["fuel_consumed"]
    assert metrics.sample_value("caxton_wasm_memory_limit_bytes", labels) == 16 * 1024 * 1024
    assert metrics.sample_value("caxton_wasm_memory_bytes", labels) == 65536


def test_echo_uses_the_clock_and_round_trips_unicode(make_runtime: Any, wat: Wat) -> None:
    echo = make_runtime(wat("echo"), agent="echo")
    message = {"text": "héllo ✓", "n": [1, 2.5, None, True]}
    assert echo.handle(message) == message


def test_concurrent_callers_share_a_pool(make_runtime: Any, wat: Wat) -> None:
    echo = make_runtime(wat("echo"), agent="pooled", pool_size=2)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(200):
                assert echo.handle({"worker": n, "i": i}) == {"worker": n, "i": i}
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stats = echo.stats()
    assert stats["messages"] == 800 and stats["instances"] == 2 and stats["in_flight"] == 0


def test_public_call_path_gives_the_same_answers(make_runtime: Any, wat: Wat, monkeypatch: Any) -> None:
    monkeypatch.setattr(fastcall, "FAST_PATH_AVAILABLE", False)
    echo = make_runtime(wat("switch"), agent="slow-path")
    assert echo.handle({"a": 1}) == {"a": 1}
    with pytest.raises(runtime.WasmFailure) as caught:
        echo.handle({"trap": 1})
    assert caught.value.reason == "trap"


def test_stop_refuses_new_messages_and_releases_the_ticker(make_runtime: Any, wat: Wat) -> None:
    policy = SecurityPolicy(denied_features=["threads", "tail-call"])  # an engine of its own
    rt = make_runtime(wat("echo"), agent="stopper", policy=policy)
    ticker = rt.module.engine.ticker
    assert ticker.running
    rt.stop()
    assert not ticker.running
    with pytest.raises(runtime.WasmFailure) as caught:
        rt.handle({"a": 1})
    assert caught.value.reason == "circuit_open" and "stopped" in caught.value.message
    with pytest.raises(SandboxError, match="already started"):
        rt.start()


def test_unserializable_message_is_invalid_input(good: Any) -> None:
    with pytest.raises(InvalidInput, match="not JSON-serializable"):
        good.handle({"when": object()})


def test_compiled_modules_are_cached_in_process(wat: Wat) -> None:
    modules.clear_memory_cache()
    first = runtime.load_module(wat("echo"), SecurityPolicy())
    second = runtime.load_module(wat("echo"), SecurityPolicy())
    assert first.from_cache == "none" and second.from_cache == "memory"
    assert second.module is first.module and second.sha256 == first.sha256


def test_disk_cache_survives_a_restart_and_ignores_corrupt_artifacts(wat: Wat, tmp_path: Path) -> None:
    runtime.set_cache_dir(tmp_path)
    try:
        modules.clear_memory_cache()
        compiled = runtime.load_module(wat("echo"), SecurityPolicy())
        artifacts = list(tmp_path.glob(f"{compiled.sha256}-*.cwasm"))
        assert len(artifacts) == 1
        modules.clear_memory_cache()  # what an engine restart looks like
        assert runtime.load_module(wat("echo"), SecurityPolicy()).from_cache == "disk"
        artifacts[0].write_bytes(b"not an artifact")
        modules.clear_memory_cache()
        assert runtime.load_module(wat("echo"), SecurityPolicy()).from_cache == "none"
    finally:
        runtime.set_cache_dir(None)


def test_missing_exports_and_wrong_signatures_are_named() -> None:
    wasm = _module('(func (export "caxton_alloc") (param i64) (result i32) (i32.const 0))')
    with pytest.raises(SandboxError) as caught:
        runtime.load_module(wasm, SecurityPolicy())
    message = caught.value.message
    assert "missing export 'caxton_handle'" in message
    assert "'caxton_alloc' has signature (i64) -> (i32), expected (i32) -> (i32)" in message


def test_host_import_with_wrong_signature_is_refused() -> None:
    wasm = bytes(wasmtime.wat2wasm(
        '(module (import "caxton" "log" (func (param i32))) (memory (export "memory") 1)' + ABI_FUNCS + ")"
    ))
    with pytest.raises(SandboxError, match=r"caxton.log has signature \(i32\) -> \(\), expected"):
        runtime.load_module(wasm, SecurityPolicy())


def test_initial_memory_over_the_limits_is_refused() -> None:
    wasm = _module(ABI_FUNCS, memory='(memory (export "memory") 300)')
    with pytest.raises(SandboxError, match="300 memory pages, over security_policy.max_memory_pages"):
        runtime.load_module(wasm, SecurityPolicy())
    small = _module(ABI_FUNCS, memory='(memory (export "memory") 20)')
    module = runtime.load_module(small, SecurityPolicy())
    rt = runtime.WasmAgentRuntime(module, WasmResourceLimits(max_memory_bytes=1024 * 1024), SecurityPolicy(),
                                  agent="fat", revision=1)
    with pytest.raises(SandboxError, match="starts with 1310720 bytes of memory, over the limit of 1048576"):
        rt.start()


def test_denied_features_are_enforced_and_unenforceable_ones_refused(wat: Wat) -> None:
    simd = _module('(func (export "f") (result v128) (v128.const i32x4 0 0 0 0))' + ABI_FUNCS)
    with pytest.raises(SandboxError, match="does not compile.*SIMD support is not enabled"):
        runtime.load_module(simd, SecurityPolicy())
    assert runtime.load_module(simd, SecurityPolicy(denied_features=[])).exports["f"] == "func"
    with pytest.raises(SandboxError, match="cannot enforce") as caught:
        runtime.load_module(wat("echo"), SecurityPolicy(denied_features=["reference-types"]))
    assert "remove 'reference-types'" in (caught.value.hint or "")


def test_one_engine_per_denied_feature_set() -> None:
    a = engines.get_engine(["simd", "threads"])
    b = engines.get_engine(["threads", "simd", "simd"])
    assert a is b and a.key == ("simd", "threads")


def test_stop_waits_for_in_flight_calls_and_turns_away_queued_ones(make_runtime: Any, wat: Wat) -> None:
    rt = make_runtime(wat("switch"), agent="draining", fuel=10**15, max_execution_time_ms=200)
    outcomes: list[str] = []

    def send(envelope: dict[str, Any]) -> None:
        try:
            rt.handle(envelope)
            outcomes.append("ok")
        except runtime.WasmFailure as exc:
            outcomes.append(exc.reason + (": stopped" if "stopped" in exc.message else ""))

    spinning = threading.Thread(target=send, args=({"loop": 1},))
    spinning.start()
    while rt.stats()["in_flight"] == 0:
        threading.Event().wait(0.005)
    queued = threading.Thread(target=send, args=({"x": 1},))
    queued.start()
    while rt.stats()["in_flight"] < 2:
        threading.Event().wait(0.005)
    rt.stop()
    spinning.join()
    queued.join()
    assert sorted(outcomes) == ["circuit_open: stopped", "timeout"]
    assert rt.stats()["instances"] == 0 and rt.stats()["state"] == "stopped"


def test_stack_overflow_in_a_worker_thread_is_contained(make_runtime: Any, wat: Wat) -> None:
    rt = make_runtime(wat("stack_overflow"), agent="deep-in-thread")
    reasons: list[str] = []

    def run() -> None:
        try:
            rt.handle({"go": 1})
        except runtime.WasmFailure as exc:
            reasons.append(exc.reason)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert reasons == ["trap"]


def test_handle_nowait_answers_or_refuses_without_waiting(make_runtime: Any, wat: Wat) -> None:
    """What the engine runs on its event loop: never waits for a busy instance or a restart backoff."""
    rt = make_runtime(wat("switch"), agent="nowait", fuel=10**15, max_execution_time_ms=300)
    assert rt.handle_nowait({"a": 1}) == {"a": 1}
    reasons: list[str] = []

    def spin() -> None:
        try:
            rt.handle({"loop": 1})
        except runtime.WasmFailure as exc:
            reasons.append(exc.reason)

    spinning = threading.Thread(target=spin)
    spinning.start()
    while rt.stats()["in_flight"] == 0:
        threading.Event().wait(0.005)
    before = rt.stats()
    with pytest.raises(BlockingIOError):
        rt.handle_nowait({"b": 2})  # the only instance is busy
    after = rt.stats()
    assert (after["messages"], after["in_flight"]) == (before["messages"], 1)  # nothing counted
    spinning.join()  # the loop times out: a fatal failure, the instance is discarded
    assert reasons == ["timeout"] and rt.stats()["instances"] == 0
    assert rt.handle({"c": 3}) == {"c": 3}  # the first restart of a streak is immediate


def test_handle_nowait_leaves_a_pending_restart_and_the_circuit_probe_alone(make_runtime: Any, wat: Wat) -> None:
    from caxton.sandbox.health import HealthSettings

    settings = HealthSettings(failure_threshold=2, cooldown_s=0.0, backoff_base_s=60.0, backoff_max_s=60.0)
    rt = make_runtime(wat("switch"), agent="nowait-restart", health=settings)
    for _ in range(2):
        with pytest.raises(runtime.WasmFailure):
            rt.handle({"trap": 1})  # the 2nd recreates the instance, traps again, opens the circuit
    assert rt.stats()["instances"] == 0 and rt.stats()["circuit"] == "open"
    with pytest.raises(BlockingIOError):
        rt.handle_nowait({"x": 1})  # the restart waits 60 s: that is for a thread, not the loop
    assert rt.stats()["circuit"] == "open"  # its probe was not spent
