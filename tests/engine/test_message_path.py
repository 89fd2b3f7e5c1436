"""Where a message runs: short bounded WASM calls on the event loop (``Engine.send_now``), the rest in threads."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from caxton.engine.http import app as api_module
from caxton.engine.serving import runtime as serving_runtime
from caxton.engine.core import Engine
from caxton.engine.serving.runtime import ServingRuntime
from caxton.errors import AgentFailure
from caxton.spec.api import MessageRequest
from tests.engine.helpers import SCORER_WASM, config_spec, deploy_body, wasm_spec, wat_module

LOOP = "(loop $forever (br $forever))"


class Blocking:
    """A runtime with ``handle_nowait`` that always refuses to run without waiting."""

    worst_case_s = 0.01

    def start(self) -> None: ...

    def handle(self, envelope: dict[str, Any]) -> Any:
        return {"waited": True}

    def handle_nowait(self, envelope: dict[str, Any]) -> Any:
        raise BlockingIOError("busy")

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {}


def test_slow_messages_send_their_revision_to_the_thread_pool_for_a_while() -> None:
    serving = ServingRuntime(Blocking(), agent_id="slow", name="slow", kind="wasm", revision=1, max_message_size=10)
    assert serving.inline(100.0)
    serving.timed(0.05, 100.0)  # one 50 ms spike (a preemption?) among fast calls moves nothing
    assert serving.inline(100.0)
    for _ in range(20):
        serving.timed(serving_runtime.INLINE_SLOW_S / 20, 100.0)
    assert serving.inline(100.0)
    serving.timed(0.05, 100.0)
    serving.timed(0.05, 100.0)  # slow again and again: the average passes 2 ms; 100 x 50 ms = 5 s in threads
    assert not serving.inline(104.9)
    assert serving.inline(105.0)
    serving.stop()


def test_wasm_messages_run_inline_and_others_fall_back(engine_inproc: Engine) -> None:
    engine_inproc.deploy(wasm_spec("scorer"), SCORER_WASM)
    reply = engine_inproc.send_now("scorer", "hello", "c-1")
    assert reply is not None and reply["reply"] == engine_inproc.send("scorer", "hello", "c-1")["reply"]
    assert reply["agent"] == "scorer" and reply["conversation_id"] == "c-1"
    assert engine_inproc.send_now("nobody", "hello") is None  # `send` says why (404) off the loop
    engine_inproc.deploy(config_spec("talker"), None)
    assert engine_inproc.send_now("talker", "hello") is None  # an LLM call never runs on the loop


def test_a_busy_runtime_falls_back_having_done_nothing(engine_inproc: Engine) -> None:
    engine_inproc.deploy(wasm_spec("scorer"), SCORER_WASM)
    route = engine_inproc.router.get("scorer")
    assert route is not None
    serving = route.backends[0].serving
    serving.handle_nowait = Blocking().handle_nowait
    with pytest.raises(BlockingIOError):
        engine_inproc.send_now("scorer", "hello")
    assert serving.inflight == 0 and serving.runtime.stats()["messages"] == 0


def test_a_timed_out_inline_message_is_answered_and_its_agent_moves_to_threads(engine_inproc: Engine) -> None:
    engine_inproc.deploy(wasm_spec("looper", max_execution_time_ms=100, fuel=10**12), wat_module(LOOP))
    outcomes: list[str] = []
    for _ in range(3):  # each times out after >= 100 ms: the average passes 2 ms after one or two
        try:
            outcomes.append("inline" if engine_inproc.send_now("looper", "spin") is not None else "threads")
        except AgentFailure as failed:
            assert failed.http_status == 504
            outcomes.append("timeout")
        if outcomes[-1] == "threads":
            break
    assert outcomes[0] == "timeout" and outcomes[-1] == "threads"  # held off the loop: the next ones run in threads


def test_a_wasm_agent_that_may_run_long_never_runs_on_the_loop(engine_inproc: Engine) -> None:
    engine_inproc.deploy(wasm_spec("patient", max_execution_time_ms=5000, fuel=10**12), SCORER_WASM)
    assert engine_inproc.send_now("patient", "hi") is None
    assert engine_inproc.send("patient", "hi")["reply"]["agent"] == "scorer"
    engine_inproc.deploy(wasm_spec("frugal", max_execution_time_ms=5000, fuel=10**7), SCORER_WASM)
    assert engine_inproc.send_now("frugal", "hi") is not None  # its fuel bounds it to ~10 ms


def test_the_message_route_is_tried_first_and_changes_no_answer(api: TestClient) -> None:
    routes = api.app.router.routes  # type: ignore[attr-defined]
    assert routes[0].path == "/api/v1/agents/{name}/messages"
    assert api.put("/api/v1/agents/scorer", json=deploy_body(wasm_spec("scorer"), SCORER_WASM)).status_code == 200
    answer = api.post("/api/v1/agents/scorer/messages", json={"content": "hi"})
    assert answer.status_code == 200 and answer.json()["reply"]["agent"] == "scorer"
    assert api.get("/api/v1/agents/scorer/messages").status_code == 405
    assert api.post("/api/v1/agents/scorer/suspend").status_code == 200
    assert api.post("/api/v1/agents/scorer/messages", json={"content": "hi"}).status_code == 503


def test_swaps_under_concurrent_messages_through_the_inline_path_lose_nothing(engine_inproc: Engine) -> None:
    """What the HTTP endpoint does (``send_now``, else ``send``), from several threads, across hot swaps."""
    engine_inproc.deploy(wasm_spec("scorer"), SCORER_WASM)
    stop = threading.Event()
    served: Counter[int] = Counter()
    failures: list[BaseException] = []

    def send() -> None:
        while not stop.is_set():
            try:
                try:
                    reply = engine_inproc.send_now("scorer", "hi") or engine_inproc.send("scorer", "hi")
                except BlockingIOError:
                    reply = engine_inproc.send("scorer", "hi")
                served[reply["revision"]] += 1
            except BaseException as error:  # noqa: BLE001 - any failure is what this test counts
                failures.append(error)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for patch in range(1, 9):
            threading.Event().wait(0.02)
            engine_inproc.deploy(wasm_spec("scorer", version=f"1.0.{patch}"), SCORER_WASM)
        threading.Event().wait(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert failures == []
    assert len(served) >= 3 and max(served) == 9


class Busy:
    """An engine whose WASM instance is busy for ``busy`` tries of ``send_now``."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.calls: list[str] = []

    def send_now(self, name: str, content: Any, conversation_id: str | None, *, size_hint: int | None) -> Any:
        self.calls.append("send_now")
        if self.busy > 0:
            self.busy -= 1
            raise BlockingIOError("busy")
        return {"via": "loop"}

    def send(self, name: str, content: Any, conversation_id: str | None, *, size_hint: int | None) -> Any:
        self.calls.append("send")
        return {"via": "thread"}


@pytest.mark.parametrize(("busy", "via"), [(0, "loop"), (3, "loop"), (10**6, "thread")])
def test_a_message_polls_a_busy_instance_on_the_loop_then_falls_back_to_a_thread(busy: int, via: str) -> None:
    engine = Busy(busy)
    body = MessageRequest(content="hi", conversation_id=None)
    reply = anyio.run(api_module._deliver, engine, "scorer", body, None)  # type: ignore[arg-type]
    assert reply == {"via": via}
    tries = min(busy + 1, api_module.BUSY_POLLS)
    assert engine.calls == ["send_now"] * tries + (["send"] if via == "thread" else [])


#: Message requests as (content type, body): plain ones (the fast path) and every kind it hands to FastAPI.
REQUESTS = [
    ("application/json", b'{"content": "hi"}'),
    ("application/json", b'{"content": {"text": "x", "n": [1, 2.5, null]}, "conversation_id": "c-1"}'),
    ("Application/JSON", b'{"content": "hi", "conversation_id": null, "extra": 1}'),
    ("application/json; charset=utf-8", b'{"content": "hi"}'),
    ("application/x-ndjson", b'{"content": "hi"}'),
    ("application/json", b'{"conversation_id": "c-1"}'),
    ("application/json", b'{"content": "hi", "conversation_id": 5}'),
    ("application/json", b'{"content": "hi", "conversation_id": "' + b"c" * 201 + b'"}'),
    ("application/json", b'{"content": "hi", "conversation_id": "' + b"c" * 200 + b'"}'),
    ("application/json", b"not json"),
    ("application/json", b'{"content": "unterminated'),
    ("application/json", b"[1, 2]"),
    ("application/json", b'"just a string"'),
    ("application/json", b"\xff\xfe"),
    ("application/json", b""),
    ("text/plain", b'{"content": "hi"}'),
]


def _answers(client: TestClient) -> list[tuple[int, list[tuple[str, str]], Any]]:
    answers = []
    for agent in ("scorer", "nobody"):
        for content_type, body in REQUESTS:
            answer = client.post(f"/api/v1/agents/{agent}/messages", content=body,
                                 headers={"content-type": content_type})
            payload = answer.json()
            if answer.status_code == 200:
                payload.pop("duration_ms")
            headers = [(k, v) for k, v in answer.headers.items() if k not in ("content-length", "x-request-id")]
            answers.append((answer.status_code, headers, payload))
    return answers


def test_plain_messages_skip_fastapi_and_every_answer_stays_the_same(
    make_engine_inproc: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path (``api._plain_messages``) against FastAPI's own route, request by request."""
    answers = []
    for fast in (True, False):
        engine = make_engine_inproc(data_dir=tmp_path / f"data-{fast}")
        engine.deploy(wasm_spec("scorer"), SCORER_WASM)
        if not fast:
            monkeypatch.setattr(api_module, "_plain_messages", lambda *_: None)
        app = api_module.create_app(engine)
        route = next(r for r in app.router.routes if getattr(r, "path", None) == api_module.MESSAGES)
        assert (getattr(route, "app").__name__ == "messages") is fast
        with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
            answers.append(_answers(client))
    assert answers[0] == answers[1]
    statuses = Counter(status for status, _, _ in answers[0])
    assert statuses[200] == 5 and statuses[404] == 5 and statuses[415] == 2 and statuses[422] == 20, statuses


def test_error_answers_never_hop_to_a_thread(api: TestClient) -> None:
    """Starlette runs a sync exception handler in the thread pool: each refusal (429/503) would pay a hop."""
    import inspect

    handlers = api.app.exception_handlers  # type: ignore[attr-defined]
    assert handlers and all(inspect.iscoroutinefunction(handler) for handler in handlers.values())
