"""Restart backoff and the circuit breaker: the pure rules, then a real runtime with small settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from caxton import metrics
from caxton.sandbox import runtime
from caxton.sandbox.health import Health, HealthSettings

Wat = Callable[[str], bytes]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _health(**settings: Any) -> tuple[Health, FakeClock]:
    clock = FakeClock()
    return Health(settings=HealthSettings(**settings), clock=clock), clock


def test_backoff_is_immediate_then_doubles_up_to_the_cap() -> None:
    health, _ = _health(backoff_base_s=0.1, backoff_max_s=0.5)
    assert [health.restart_delay() for _ in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]
    health.record("success")
    assert health.restart_delay() == 0.0


def test_circuit_opens_after_threshold_then_half_opens_after_cooldown() -> None:
    health, clock = _health(failure_threshold=3, cooldown_s=10.0)
    for _ in range(2):
        assert health.admit()
        health.record("failure")
    assert health.circuit == "closed"
    assert health.admit()
    health.record("failure")
    assert health.circuit == "open" and not health.admit()
    assert health.retry_after() == 10.0
    clock.now += 10.0
    assert health.admit() and health.circuit == "half-open"
    assert not health.admit()  # only one probe at a time
    health.record("success")
    assert health.circuit == "closed" and health.consecutive_failures == 0


def test_failed_probe_reopens_the_circuit() -> None:
    health, clock = _health(failure_threshold=1, cooldown_s=5.0)
    health.admit()
    health.record("failure")
    clock.now += 5.0
    assert health.admit()
    health.record("failure")
    assert health.circuit == "open" and health.retry_after() == 5.0


def test_agent_errors_are_neutral() -> None:
    health, _ = _health(failure_threshold=2)
    health.admit()
    health.record("failure")
    health.admit()
    health.record("neutral")
    assert health.consecutive_failures == 1 and health.circuit == "closed"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        HealthSettings(failure_threshold=0)


def test_runtime_restarts_with_backoff_and_opens_the_circuit(make_runtime: Any, wat: Wat) -> None:
    settings = HealthSettings(failure_threshold=3, cooldown_s=0.3, backoff_base_s=0.05, backoff_max_s=0.05)
    logs: list[tuple[str, str]] = []
    rt = make_runtime(wat("switch"), agent="flaky", health=settings, logs=logs)
    restarts = metrics.sample_value(
        "caxton_wasm_agent_restarts_total", {"agent": "flaky", "revision": "1"}
    ) or 0.0

    for _ in range(3):
        with pytest.raises(runtime.WasmFailure) as caught:
            rt.handle({"trap": 1})
        assert caught.value.reason == "trap"
    stats = rt.stats()
    assert stats["circuit"] == "open" and stats["consecutive_failures"] == 3
    assert stats["restarts"] == 2  # the 2nd and 3rd messages each recreated the instance
    assert ("error", "[sandbox] circuit opened for 0.3 s") in logs

    with pytest.raises(runtime.WasmFailure) as caught:
        rt.handle({"x": 1})  # refused without touching the module
    assert caught.value.reason == "circuit_open"
    assert caught.value.http_status == 503 and caught.value.code == "circuit_open"
    assert caught.value.details["retry_after_s"] > 0

    time.sleep(0.35)
    assert rt.handle({"x": 1}) == {"x": 1}  # the half-open probe succeeds (after a restart)
    stats = rt.stats()
    assert stats["circuit"] == "closed" and stats["consecutive_failures"] == 0 and stats["restarts"] == 3
    assert metrics.sample_value(
        "caxton_wasm_agent_restarts_total", {"agent": "flaky", "revision": "1"}
    ) == restarts + 3


def test_restart_waits_for_the_backoff(make_runtime: Any, wat: Wat) -> None:
    settings = HealthSettings(failure_threshold=10, backoff_base_s=0.2, backoff_max_s=0.2)
    rt = make_runtime(wat("switch"), agent="slow-restart", health=settings)
    for _ in range(2):
        with pytest.raises(runtime.WasmFailure):
            rt.handle({"trap": 1})
    started = time.monotonic()
    assert rt.handle({"x": 2}) == {"x": 2}  # second restart of the streak waits the base delay
    assert time.monotonic() - started >= 0.19


def test_agent_error_reply_is_reported_but_keeps_the_circuit_closed(make_runtime: Any, wat: Wat) -> None:
    rt = make_runtime(wat("switch"), agent="complainer", health=HealthSettings(failure_threshold=1))
    with pytest.raises(runtime.WasmFailure) as caught:
        rt.handle({"error": "please"})
    assert caught.value.reason == "agent_error"
    assert "asked to fail" in caught.value.message
    stats = rt.stats()
    assert stats["failures"] == 1 and stats["circuit"] == "closed" and stats["instances"] == 1
    assert rt.handle({"y": 1}) == {"y": 1}
