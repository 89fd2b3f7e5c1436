"""Three replicas on one PostgreSQL behind a real nginx running the shipped ``deploy/nginx/caxton.conf``.

The quickstart is applied through replica 0 with ``caxton apply``; replicas 1 and 2 start after it and load
it from the store (until replicas follow each other's changes, an engine loads agents at start). Then:
messages through nginx are answered by all three; the event stream and large bodies pass through; SIGTERM
one replica under continuous load, then kill -9 another: the client sees no failed message (nginx's
``proxy_next_upstream`` retries refused and dropped connections on the survivors).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from caxton.cli import main as cli_main
from tests.support.nginx import SHIPPED, render, running_nginx
from tests.support.paths import EXAMPLES
from tests.support.postgres import create_database, drop_database
from tests.support.replicas import Replicas, running_replicas

HEADERS = {"Authorization": "Bearer replica-test-token"}
_SERVED = re.compile(r'^caxton_agent_messages_total\{[^}]*agent="scorer"[^}]*\} (\S+)$', re.MULTILINE)


@dataclass
class Cluster:
    replicas: Replicas
    nginx: str
    directory: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    url = create_database(pg_server_url)
    try:
        with running_replicas(directory, url, count=3, config="server:\n  stream_heartbeat: 0.3s\n",
                              start=False) as replicas:
            replicas.start(0)
            applied = cli_main.main(["apply", str(EXAMPLES / "agents"), "--engine", replicas[0].url,
                                     "--token", replicas.token, "--auto-approve"])
            assert applied == 0, replicas.logs()
            replicas.start(1, 2)
            with running_nginx(directory / "nginx", replicas.addresses) as nginx:
                yield Cluster(replicas, nginx, directory)
    finally:
        drop_database(pg_server_url, url)


def test_the_test_runs_the_shipped_config_with_only_its_addresses_and_port_replaced() -> None:
    shipped = SHIPPED.read_text().splitlines()
    rendered = render(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], 4444).splitlines()
    changed = [(a, b) for a, b in zip(shipped, rendered, strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [
        "server 127.0.0.1:1 max_fails=1 fail_timeout=2s;", "server 127.0.0.1:2 max_fails=1 fail_timeout=2s;",
        "server 127.0.0.1:3 max_fails=1 fail_timeout=2s;", "listen 127.0.0.1:4444;"]
    for needed in ("proxy_next_upstream error timeout non_idempotent;", "proxy_buffering off;",
                   "client_max_body_size 64m;", "proxy_read_timeout 300s;"):
        assert needed in SHIPPED.read_text(), needed


def _served(replica_url: str) -> float:
    text = httpx.get(replica_url + "/metrics", headers=HEADERS, timeout=10).text
    return sum(float(value) for value in _SERVED.findall(text))


def _message(client: httpx.Client, base: str, n: int) -> httpx.Response:
    return client.post(f"{base}/api/v1/agents/scorer/messages", json={"content": {"text": f"message {n}"}},
                       headers=HEADERS)


def test_messages_through_nginx_are_answered_by_all_three_replicas(cluster: Cluster) -> None:
    before = [_served(url) for url in cluster.replicas.urls]
    with httpx.Client(timeout=30) as client:
        replies = [_message(client, cluster.nginx, n) for n in range(60)]
    assert Counter(reply.status_code for reply in replies) == {200: 60}, replies[0].text
    assert all(reply.json()["reply"]["agent"] == "scorer" for reply in replies)
    gained = [_served(url) - was for url, was in zip(cluster.replicas.urls, before, strict=True)]
    assert sum(gained) == 60 and all(count > 0 for count in gained), gained


def test_the_event_stream_and_large_bodies_pass_through_nginx(cluster: Cluster) -> None:
    seen: list[str] = []
    with httpx.Client(timeout=30) as client:
        with client.stream("GET", cluster.nginx + "/api/v1/events/stream?after=0", headers=HEADERS) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():  # the stored events (the quickstart's deploys), then heartbeats
                seen.append(line)
                if sum(1 for got in seen if got.startswith(":")) >= 4:
                    break
        assert any("scorer" in line for line in seen if line.startswith("data:")), seen[:20]

        big_message = client.post(f"{cluster.nginx}/api/v1/agents/scorer/messages", headers=HEADERS,
                                  json={"content": {"text": "x" * (2 * 1024 * 1024)}})
        assert big_message.status_code == 413 and big_message.json()["error"]["code"], big_message.text[:300]
        big_plan = client.post(f"{cluster.nginx}/api/v1/applies", headers=HEADERS,
                               json={"plan_id": "too-big", "changes": [], "padding": "x" * (3 * 1024 * 1024)})
        # The engine's own answer (JSON), not nginx's 413 page: nginx lets plans up to max_apply_size through.
        assert big_plan.status_code != 413 and "error" in big_plan.json(), big_plan.text[:300]


class Load:
    """Clients sending messages through nginx until stopped; every answer and error kept."""

    def __init__(self, base: str, clients: int = 4) -> None:
        self.base = base
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    reply = _message(client, self.base, worker * 1_000_000 + n)
                    self.statuses[reply.status_code] += 1
                    if reply.status_code != 200:
                        self.errors.append(f"{reply.status_code}: {reply.text[:200]}")
                except httpx.HTTPError as error:
                    self.errors.append(f"{type(error).__name__}: {error}")

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        target = sum(self.statuses.values()) + count
        while sum(self.statuses.values()) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sum(self.statuses.values()) >= target, f"the load stalled: {self.statuses} {self.errors[:5]}"


def test_sigterm_then_kill_9_of_replicas_under_load_fail_no_message(cluster: Cluster) -> None:
    replicas = cluster.replicas
    with Load(cluster.nginx) as load:
        load.wait_for(100)
        assert replicas.terminate(2) == 0, replicas.logs()  # drains: in-flight answered, then refuses
        load.wait_for(100)
        assert replicas.kill(1) == -9
        load.wait_for(200)
    assert not load.errors, load.errors[:10]
    assert set(load.statuses) == {200}
