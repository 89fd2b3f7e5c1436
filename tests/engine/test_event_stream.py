"""``GET /api/v1/events/stream`` against a real engine subprocess: server-sent events of applies,
canary steps and agent changes; resume with Last-Event-ID, the agent filter, auth, heartbeats,
a slow client dropped with ``event: overflow``, and a SIGTERM that ends open streams cleanly."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from caxton.client import agents as agent_api
from caxton.client import events as stream_api
from caxton.client import rollouts as rollout_api
from caxton.client import status as status_api
from caxton.spec import api
from tests.rollouts.test_durability import create, http_load, write_agent
from tests.security.auth_tokens import write_tokens
from tests.support.engine import EngineProcess, running_engine
from tests.support.poll import wait_for

SETTINGS = {"memory": {"enabled": False}, "server": {"stream_heartbeat": 0.2}}
CANARY = {"strategy": "canary", "steps": [50, 100], "interval": "1s", "analysis": {"min_requests": 1}}
#: Without traffic: no data, paused, measured again every 20 ms (a frame each time).
MEASURING = {"strategy": "canary", "steps": [50, 100], "interval": 0.02,
             "analysis": {"min_requests": 1_000_000, "max_p95_latency_ms": 1000}}


def config(root: Path, **server: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "caxton.yaml"
    path.write_text(yaml.safe_dump({**SETTINGS, "server": {**SETTINGS["server"], **server}}))
    return path


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("stream")
    with running_engine(root, config=config(root)) as engine:
        yield engine


class Reader:
    """A stream read by a thread into ``frames`` (``caxton.client.events.frames``, or ``follow``)."""

    def __init__(self, engine: EngineProcess, *, follow: bool = False, **kwargs: Any) -> None:
        self.client = engine.client(timeout=30.0)
        self.frames: list[stream_api.Frame] = []
        self.error: BaseException | None = None
        read = stream_api.follow if follow else stream_api.frames
        self.thread = threading.Thread(target=self._run, args=(read, kwargs), daemon=True)
        self.thread.start()

    def _run(self, read: Callable[..., Iterator[stream_api.Frame]], kwargs: dict[str, Any]) -> None:
        try:
            for frame in read(self.client, **kwargs):
                self.frames.append(frame)
        except Exception as error:  # noqa: BLE001 - closing the client ends the read with an error
            self.error = error

    def wait(self, check: Callable[[list[stream_api.Frame]], object], what: str, timeout: float = 30.0) -> None:
        wait_for(lambda: check(list(self.frames)), timeout, what)

    def of(self, kind: str) -> list[Any]:
        return [frame.data for frame in list(self.frames) if frame.kind == kind]

    def close(self) -> None:
        self.client.close()
        self.thread.join(10)


def gauge(engine: EngineProcess, name: str) -> float:
    text = httpx.get(engine.url + "/metrics", timeout=10, headers=_auth(engine)).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not exported"
    return float(found.group(1))


def _auth(engine: EngineProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {engine.token}"} if engine.token else {}


def streams_open(engine: EngineProcess, count: int) -> None:
    wait_for(lambda: gauge(engine, "caxton_event_streams_open") == count, 15, f"{count} stream(s) open")


def event_log(engine: EngineProcess, after: int, agent: str | None = None) -> list[api.Event]:
    with engine.client() as client:
        return status_api.events(client, agent=agent, after=after, limit=1000).events


def toggle(engine: EngineProcess, name: str, times: int = 1) -> None:
    with engine.client() as client:
        for _ in range(times):
            agent_api.suspend(client, name)
            agent_api.resume(client, name)


def test_an_apply_and_its_canary_arrive_as_events_rollout_steps_measurements_and_apply_lines(
    run_cli: Any, streaming: EngineProcess, tmp_path: Path,
) -> None:
    create(run_cli, streaming, tmp_path / "repo", name="canary")
    first = event_log(streaming, 0)[-1].id
    reader = Reader(streaming, after=first)
    try:
        streams_open(streaming, 1)
        with http_load(streaming, name="canary"):
            write_agent(tmp_path / "repo", 2, CANARY, name="canary")
            applied = run_cli("apply", str(tmp_path / "repo" / "agents"), "--engine", streaming.url, "--auto-approve")
            assert applied.code == 0, applied.err
            reader.wait(lambda frames: any(f.kind == "event" and f.data.what == "apply_finished" for f in frames),
                        "the apply's end on the stream")
    finally:
        reader.close()
    # Every engine event after `first`, in order, once, as GET /events has them.
    streamed = reader.of("event")
    assert [e.model_dump() for e in streamed] == [e.model_dump() for e in event_log(streaming, first)]
    assert [f.id for f in reader.frames if f.kind == "event"] == [e.id for e in streamed]
    assert {"rollout_started", "rollout_succeeded", "apply_finished"} <= {e.what for e in streamed}
    # The rollout: started, its second step, measurements against thresholds, its end.
    rollouts = reader.of("rollout")
    assert all(isinstance(r, api.RolloutProgress) and r.agent == "canary" for r in rollouts)
    progress = [r for r in rollouts if r.change == api.RolloutChange.PROGRESS]
    assert [r.rollout.step for r in progress][:2] == [0, 0] and 1 in [r.rollout.step for r in progress]
    assert progress[-1].rollout.status == api.RolloutStatus.SUCCEEDED
    measured = [r for r in rollouts if r.change == api.RolloutChange.MEASUREMENT]
    assert measured and measured[0].rollout.measurements[-1].metric == "error_rate"
    assert measured[0].rollout.measurements[-1].threshold is not None and measured[0].rollout.live is not None
    # The apply's progress lines, numbered, ending with its outcome.
    lines = reader.of("apply")
    assert all(isinstance(a, api.ApplyProgress) for a in lines) and len({a.apply_id for a in lines}) == 1
    assert [a.line.seq for a in lines] == list(range(1, len(lines) + 1))
    assert lines[-1].status == api.ApplyStatus.SUCCEEDED and lines[-1].line.message == "apply succeeded"
    # The rollout's time series over HTTP: both revisions served messages in its buckets.
    with streaming.client() as client:
        series = rollout_api.series(client, "canary")
    assert series.status == api.RolloutStatus.SUCCEEDED and series.rollout_id == progress[-1].rollout.id
    assert {r.role: sum(p.requests for p in r.points) > 0 for r in series.revisions} == {"candidate": True,
                                                                                          "stable": True}


def test_a_reconnect_with_last_event_id_loses_nothing_and_repeats_nothing(
    run_cli: Any, streaming: EngineProcess, tmp_path: Path,
) -> None:
    create(run_cli, streaming, tmp_path / "repo", name="resumed")
    start = event_log(streaming, 0)[-1].id
    reader = Reader(streaming, after=start)
    streams_open(streaming, 1)
    toggle(streaming, "resumed", 2)
    reader.wait(lambda frames: len([f for f in frames if f.kind == "event"]) >= 4, "4 transitions")
    reader.close()
    streams_open(streaming, 0)
    seen = [f.id for f in reader.frames if f.kind == "event"]
    toggle(streaming, "resumed", 3)  # while nobody listens
    again = Reader(streaming, after=seen[-1])
    try:
        toggle(streaming, "resumed", 1)
        expected = [e.id for e in event_log(streaming, start)]
        again.wait(lambda frames: [f.id for f in frames if f.kind == "event"] == expected[len(seen):],
                   "the missed events, then the new ones")
    finally:
        again.close()
    assert seen == expected[:len(seen)]


def test_follow_reconnects_across_an_engine_restart_with_last_event_id(
    run_cli: Any, tmp_path: Path,
) -> None:
    with running_engine(tmp_path, config=config(tmp_path)) as engine:
        create(run_cli, engine, tmp_path / "repo", name="restarted")
        start = event_log(engine, 0)[-1].id
        reader = Reader(engine, follow=True, after=start, backoff=0.1, retries=40)
        try:
            streams_open(engine, 1)
            toggle(engine, "restarted")
            assert engine.terminate() == 0
            engine.start()
            streams_open(engine, 1)  # follow connected again
            toggle(engine, "restarted")
            expected = [e.id for e in event_log(engine, start)]
            reader.wait(lambda frames: [f.id for f in frames if f.kind == "event"] == expected,
                        "every event, across the restart, once")
        finally:
            reader.close()


def test_the_agent_filter_keeps_only_that_agents_frames(
    run_cli: Any, streaming: EngineProcess, tmp_path: Path,
) -> None:
    for name in ("left", "right"):
        write_agent(tmp_path, 1, name=name)
    assert run_cli("apply", str(tmp_path / "agents"), "--engine", streaming.url, "--auto-approve").code == 0
    start = event_log(streaming, 0)[-1].id
    reader = Reader(streaming, agent="right", after=start)
    try:
        streams_open(streaming, 1)
        toggle(streaming, "left")
        toggle(streaming, "right")
        toggle(streaming, "left")
        expected = [e.id for e in event_log(streaming, start, agent="right")]
        assert len(expected) == 2
        reader.wait(lambda frames: [f.id for f in frames if f.kind == "event"] == expected, "right's events")
    finally:
        reader.close()
    assert {frame.data.agent for frame in reader.frames} == {"right"}


def test_heartbeats_keep_an_idle_stream_open_until_its_timeout(streaming: EngineProcess) -> None:
    with httpx.stream("GET", streaming.url + "/api/v1/events/stream", params={"timeout": 1}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    assert lines[:2] == ["retry: 2000", ": caxton event stream"]
    assert lines.count(": heartbeat") >= 2
    assert lines[-3:] == ["event: end", 'data: {"reason":"timeout","last_event_id":null}', ""]
    streams_open(streaming, 0)


def test_the_stream_needs_the_read_role(tmp_path: Path) -> None:
    tokens = write_tokens(tmp_path / "tokens.yaml", {"reader": (["read"], None, None),
                                                     "messenger": (["message"], None, None)})
    path = config(tmp_path)
    path.write_text(path.read_text() + "security:\n  tokens_file: tokens.yaml\n")
    with running_engine(tmp_path, config=path) as engine:
        url = engine.url + "/api/v1/events/stream?timeout=0.5"
        refused = httpx.get(url, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        wrong = httpx.get(url, headers={"Authorization": f"Bearer {tokens['messenger']}"}, timeout=30)
        assert wrong.status_code == 403
        read = httpx.get(url, headers={"Authorization": f"Bearer {tokens['reader']}"}, timeout=30)
        assert read.status_code == 200 and read.text.endswith('event: end\ndata: {"reason":"timeout","last_event_id":null}\n\n')


def test_a_client_that_does_not_read_is_dropped_with_an_overflow_frame(run_cli: Any, tmp_path: Path) -> None:
    """The kernel takes up to tcp_wmem's 4 MiB of a stalled client's frames before the engine's queue
    (``stream_queue: 4``) fills: big frames come fast from paused canaries measuring every 20 ms (their
    rollout views carry up to 200 measurements each)."""
    names = [f"flood-{n}" for n in range(3)]
    with running_engine(tmp_path, config=config(tmp_path, stream_queue=4)) as engine:
        for name in names:
            write_agent(tmp_path, 1, name=name)
        assert run_cli("apply", str(tmp_path / "agents"), "--engine", engine.url, "--auto-approve").code == 0
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        slow.connect(("127.0.0.1", engine.port))
        slow.sendall(b"GET /api/v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        try:
            streams_open(engine, 1)
            for name in names:
                write_agent(tmp_path, 2, MEASURING, name=name)
            detached = run_cli("apply", str(tmp_path / "agents"), "--engine", engine.url, "--auto-approve", "--detach")
            assert detached.code == 0, detached.err
            wait_for(lambda: gauge(engine, "caxton_event_streams_dropped_total") == 1, 120, "the stream dropped")
            received = _read_all(slow)
        finally:
            slow.close()
        streams_open(engine, 0)
        assert gauge(engine, "caxton_event_streams_dropped_total") == 1
        assert re.search(rb'event: overflow\ndata: \{"reason":"overflow","last_event_id":\d+\}\n\n\r\n0\r\n\r\n$',
                         received), received[-300:]
        with engine.client() as client:  # the engine serves on
            assert status_api.health(client).status == "healthy"
            assert len(client.request("GET", "/rollouts")["rollouts"]) == len(names)


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_ends_open_streams_and_the_engine_exits_cleanly(tmp_path: Path) -> None:
    with running_engine(tmp_path, config=config(tmp_path)) as engine:
        readers = [Reader(engine), Reader(engine, agent="nobody")]
        try:
            streams_open(engine, 2)
            assert engine.terminate() == 0
            for reader in readers:
                reader.thread.join(30)
                assert not reader.thread.is_alive()
                assert reader.error is None, reader.error
                assert reader.frames[-1].kind == "end" and reader.frames[-1].data.reason == "shutdown"
        finally:
            for reader in readers:
                reader.close()
        log = engine.log_text()
    assert "timeout graceful shutdown exceeded" not in log
