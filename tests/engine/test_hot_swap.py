"""Hot swap: new revisions take over under concurrent messages with zero failed messages."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from caxton.engine.core import Engine
from caxton.spec.project import ProjectConfig
from tests.engine.helpers import SCORER_WASM, config_spec, wasm_spec
from tests.support.openai_server import running_openai_server

SWAPS = 12


def _senders(engine: Engine, names: list[str], stop: threading.Event) -> tuple[list[threading.Thread], Counter[Any], list[BaseException]]:
    served: Counter[Any] = Counter()
    failures: list[BaseException] = []

    def send(name: str) -> None:
        while not stop.is_set():
            try:
                served[(name, engine.send(name, "hi")["revision"])] += 1
            except BaseException as error:  # noqa: BLE001 - any failure is what this test counts
                failures.append(error)

    threads = [threading.Thread(target=send, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    return threads, served, failures


def test_swaps_under_concurrent_messages_lose_nothing(engine_inproc: Engine) -> None:
    engine_inproc.deploy(wasm_spec("scorer"), SCORER_WASM)
    engine_inproc.deploy(config_spec("helper"), None)
    stop = threading.Event()
    threads, served, failures = _senders(engine_inproc, ["scorer", "scorer", "helper", "helper"], stop)
    try:
        for patch in range(1, SWAPS + 1):
            time.sleep(0.02)
            engine_inproc.deploy(wasm_spec("scorer", version=f"1.0.{patch}"), SCORER_WASM)
            engine_inproc.deploy(config_spec("helper", version=f"1.0.{patch}"), None)
        time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert failures == []
    for name in ("scorer", "helper"):
        revisions = {rev for (agent, rev), count in served.items() if agent == name}
        assert len(revisions) >= 3 and max(revisions) == SWAPS + 1
        route = engine_inproc.router.get(name)
        assert route is not None and [s.revision for s in route.servings()] == [SWAPS + 1]


def test_a_swap_waits_for_in_flight_messages_of_the_old_revision(
    make_engine_inproc: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAXTON_TEST_LLM_KEY", "test-key")
    with running_openai_server() as server:
        server.delay = 0.6
        config = ProjectConfig.model_validate(
            {"llm": {"openai": {"base_url": server.url, "api_key_env": "CAXTON_TEST_LLM_KEY", "retries": 0}}}
        )
        engine = make_engine_inproc(config)
        llm = {"provider": "openai", "model": "test-model"}
        engine.deploy(config_spec("slow", llm=llm), None)
        result: dict[str, Any] = {}
        sender = threading.Thread(target=lambda: result.update(engine.send("slow", "take your time")))
        sender.start()
        route = engine.router.get("slow")
        assert route is not None
        old = next(route.servings())
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:  # the message is at the LLM (0.6 s to answer)
            time.sleep(0.005)
        assert server.requests, "the message never reached the LLM"
        began = time.monotonic()
        engine.deploy(config_spec("slow", version="1.1.0", llm=llm), None)
        waited = time.monotonic() - began
        sender.join(10)
    assert result["revision"] == 1 and "take your time" in str(result["reply"])
    assert waited >= 0.3  # the deploy returned only once the old revision had drained
    assert old.closing and old.inflight == 0
