"""Malicious and broken modules are contained with a clear error; a good agent keeps answering."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import wasmtime

from caxton import metrics
from caxton.errors import SandboxError
from caxton.sandbox import runtime
from caxton.spec.agent import SecurityPolicy

#: Fuel and epoch checks are inserted by the compiler: every attack runs under both.
pytestmark = pytest.mark.usefixtures("each_compiler")

Wat = Callable[[str], bytes]
Serving = Callable[..., None]


def _fail(rt: runtime.WasmAgentRuntime, envelope: dict[str, Any] | None = None) -> runtime.WasmFailure:
    with pytest.raises(runtime.WasmFailure) as caught:
        rt.handle(envelope if envelope is not None else {"message": "hi"})
    return caught.value


def _violations(agent: str, kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "caxton_wasm_security_violations_total", {"agent": agent, "kind": kind}
    )
    return value or 0.0


def test_infinite_loop_runs_out_of_fuel(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("infinite_loop"), agent="looper", fuel=1_000_000)
    before = _violations("looper", "out_of_fuel")
    failure = _fail(rt)
    assert failure.reason == "out_of_fuel"
    assert "fuel" in failure.message and failure.hint and "resource_limits.fuel" in failure.hint
    assert failure.http_status == 502
    assert _violations("looper", "out_of_fuel") == before + 1
    assert rt.stats()["fuel_consumed"] >= 1_000_000
    assert_serving()


def test_busy_loop_with_huge_fuel_hits_the_wall_clock(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("infinite_loop"), agent="spinner", fuel=10**15, max_execution_time_ms=50)
    failure = _fail(rt)
    assert failure.reason == "timeout"
    assert failure.http_status == 504
    assert "max_execution_time_ms" in (failure.hint or "")
    assert_serving()


def test_good_agent_answers_while_another_spins(make_runtime: Any, wat: Wat, good: Any) -> None:
    spinner = make_runtime(wat("infinite_loop"), agent="spinner2", fuel=10**15, max_execution_time_ms=300)
    reasons: list[str] = []

    def spin() -> None:
        for _ in range(2):
            with pytest.raises(runtime.WasmFailure) as caught:
                spinner.handle({"spin": True})
            reasons.append(caught.value.reason)

    thread = threading.Thread(target=spin)
    thread.start()
    answers = [good.handle({"n": i}) for i in range(50)]
    thread.join()
    assert reasons == ["timeout", "timeout"]
    assert all(answer["agent"] == "scorer" for answer in answers)


def test_memory_bomb_is_refused_at_the_limit(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("memory_bomb"), agent="bomber", max_memory_bytes=2 * 1024 * 1024)
    failure = _fail(rt)
    assert failure.reason == "memory_limit"
    assert "2097152" in failure.message
    assert rt.stats()["instances"] == 0  # discarded: its memory is gone until the restart
    assert_serving()
    second = _fail(rt)  # restarted fresh, bombs again
    assert second.reason == "memory_limit"
    assert rt.stats()["restarts"] == 1


def test_stack_overflow_by_recursion_traps(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("stack_overflow"), agent="recurser")
    failure = _fail(rt)
    assert failure.reason == "trap"
    assert "stack overflow" in failure.message
    assert_serving()


def test_disallowed_import_is_refused_at_load(wat: Wat, assert_serving: Serving) -> None:
    with pytest.raises(SandboxError) as caught:
        runtime.load_module(wat("disallowed_import"), SecurityPolicy())
    error = caught.value
    assert "env.system" in error.message
    assert error.hint and "allowed_imports" in error.hint and "caxton.log" in error.hint
    assert_serving()


def test_allowed_but_unprovided_import_is_refused(wat: Wat) -> None:
    policy = SecurityPolicy(allowed_imports=["caxton.log", "env.system"])
    with pytest.raises(SandboxError, match="provides no such host function"):
        runtime.load_module(wat("disallowed_import"), policy)


def test_oversized_module_is_refused_before_compiling(assert_serving: Serving) -> None:
    big = wasmtime.wat2wasm('(module (memory 1) (data (i32.const 0) "' + "\\00" * 50_000 + '"))')
    with pytest.raises(SandboxError) as caught:
        runtime.load_module(bytes(big), SecurityPolicy(), max_module_size=10_000)
    assert "over the limit of 10000 bytes" in caught.value.message
    assert "max_module_size" in (caught.value.hint or "")
    assert_serving()


@pytest.mark.parametrize(
    ("name", "reason", "words"),
    [
        ("start_trap", "trap", "unreachable"),
        ("init_trap", "trap", "divide by zero"),
        ("init_loop", "out_of_fuel", "fuel"),
    ],
)
def test_trap_in_initializer_fails_start(
    make_runtime: Any, wat: Wat, assert_serving: Serving, name: str, reason: str, words: str
) -> None:
    with pytest.raises(SandboxError) as caught:
        make_runtime(wat(name), agent=f"init-{name}", fuel=1_000_000)
    error = caught.value
    assert error.details["reason"] == reason
    assert "failed to start" in error.message and words in error.message.lower()
    assert_serving()


def test_reply_pointer_out_of_bounds_is_a_bad_reply(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("oob_reply"), agent="liar")
    failure = _fail(rt)
    assert failure.reason == "bad_reply"
    assert "outside linear memory" in failure.message
    assert_serving()


def test_oversized_reply_is_refused(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("huge_reply"), agent="talker", max_message_size=1024)
    failure = _fail(rt)
    assert failure.reason == "reply_too_large"
    assert "60000 bytes" in failure.message
    assert_serving()


def test_oversized_message_is_refused_before_the_sandbox(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("echo"), agent="small", max_message_size=100)
    failure = _fail(rt, {"message": "x" * 200})
    assert failure.reason == "message_too_large"
    assert failure.http_status == 413
    stats = rt.stats()
    assert stats["rejected"] == 1 and stats["messages"] == 0 and stats["fuel_consumed"] == 0
    assert rt.handle({"message": "ok"}) == {"message": "ok"}
    assert_serving()


def test_garbage_reply_is_a_bad_reply(make_runtime: Any, wat: Wat, assert_serving: Serving) -> None:
    rt = make_runtime(wat("garbage_reply"), agent="garbler")
    failure = _fail(rt)
    assert failure.reason == "bad_reply"
    assert "not UTF-8 JSON" in failure.message
    assert rt.stats()["instances"] == 1  # not a trap: the instance is kept
    assert_serving()


def test_wasi_is_refused_without_a_grant(wat: Wat) -> None:
    with pytest.raises(SandboxError, match="grants neither file_system_access nor network_access"):
        runtime.load_module(wat("wasi_open"), SecurityPolicy())


def test_wasi_with_a_grant_has_no_preopened_files(make_runtime: Any, wat: Wat) -> None:
    rt = make_runtime(wat("wasi_open"), agent="reader", policy=SecurityPolicy(file_system_access=True))
    assert rt.handle({"open": "/etc/passwd"}) == {"errno": "08"}  # EBADF: no descriptor to open from


def test_log_flood_is_capped_and_out_of_bounds_log_traps(make_runtime: Any, wat: Wat) -> None:
    logs: list[tuple[str, str]] = []
    rt = make_runtime(wat("log_flood"), agent="chatty", logs=logs)
    assert rt.handle({"x": 1}) == {"x": 1}
    assert logs.count(("warn", "line")) == 100
    assert ("warn", "900 log lines dropped (limit 100 per message)") in logs
    failure = _fail(rt, {"oob": 1})
    assert failure.reason == "trap" and "outside linear memory" in failure.message


def test_the_attacks_above_ran_under_the_compiler_under_test(each_compiler: str, good: Any) -> None:
    assert good.module.compiler == each_compiler
