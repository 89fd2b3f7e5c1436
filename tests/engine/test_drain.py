"""SIGTERM drains a real engine process: not ready at once, still serving for ``server.drain_delay``,
the message in flight answered, then exit 0 (docs/scale-out.md, "Load balancer")."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.engine.helpers import deploy_body, wasm_spec
from tests.support.engine import EngineProcess
from tests.support.hold import hold_module, parse_hold

TOKEN = "drain-test-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _poll(check: Any, *, what: str, deadline_s: float = 20.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"not seen in {deadline_s}s: {what}")


def _inflight(engine: EngineProcess, name: str) -> int:
    detail = httpx.get(f"{engine.url}/api/v1/agents/{name}", headers=HEADERS, timeout=5).json()
    return sum(int(runtime.get("inflight", 0)) for runtime in detail["runtime"])


def test_sigterm_turns_readyz_503_serves_through_drain_delay_and_answers_the_message_in_flight(
        tmp_path: Path) -> None:
    config = tmp_path / "caxton.yaml"
    config.write_text("memory:\n  enabled: false\nserver:\n  drain_delay: 3s\n")
    engine = EngineProcess(tmp_path / "data", token=TOKEN, config=config).start()
    try:
        put = httpx.put(f"{engine.url}/api/v1/agents/holder", headers=HEADERS, timeout=30,
                        json=deploy_body(wasm_spec("holder", max_execution_time_ms=10_000, fuel=10**12),
                                         hold_module(2000)))
        assert put.status_code == 200, put.text
        answered: list[httpx.Response] = []
        sender = threading.Thread(target=lambda: answered.append(httpx.post(
            f"{engine.url}/api/v1/agents/holder/messages", headers=HEADERS, json={"content": "hold"}, timeout=30)))
        sender.start()
        _poll(lambda: _inflight(engine, "holder") >= 1, what="the message running in the agent")

        assert engine.proc is not None
        sigterm_at_ms = time.time() * 1000
        engine.proc.send_signal(signal.SIGTERM)

        not_ready = _poll(lambda: (r := httpx.get(engine.url + "/readyz", timeout=5)).status_code == 503 and r,
                          what="/readyz answering 503")
        assert not_ready.json()["error"]["message"] == "the engine is shutting down"
        health = httpx.get(engine.url + "/api/v1/health", timeout=5)  # still served during the delay
        assert health.status_code == 200 and health.json()["phase"] == "stopping"

        sender.join(30)
        assert answered and answered[0].status_code == 200, answered and answered[0].text
        held = parse_hold(answered[0].json()["reply"])
        assert held["start"] <= sigterm_at_ms <= held["end"]  # it was running when SIGTERM came
        assert engine.proc.wait(30) == 0
        log = engine.log_text()
        assert "draining: /readyz answers 503; serving 3s more (server.drain_delay)" in log
    finally:
        if engine.running:
            engine.kill()
