"""Three engine replicas on one PostgreSQL behind a real nginx (the shipped config), and load through it.

    with running_cluster(directory, pg_url, llm_url=openai_server.url) as cluster:
        cluster.nginx                      # http://127.0.0.1:PORT: nginx in front of the replicas
        cluster.replicas                   # tests.support.replicas.Replicas (kill, restart, terminate, urls)
        cluster.repo                       # a copy of examples/quickstart (agents/, wasm/): edit, then apply
        cluster.apply("--detach")          # `caxton apply REPO/agents` through nginx; its CliResult
        cluster.leader()                   # the index of the replica leading the rollouts (health/detailed)

``Traffic`` sends messages through nginx from threads until stopped and keeps every answer: WASM messages
(``send``) and config agents' conversations (``converse``: each thread keeps its conversations and their
acknowledged turns, so a test can check the history the model was sent and the store kept: no conversation is
cut by ``conversations.max_turns`` here). The replicas' config agents reach
the local OpenAI-compatible test server (``llm_url``) with the key in ``LLM_KEY_ENV``.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from caxton.cli import main as cli_main
from tests.support.nginx import running_nginx
from tests.support.paths import EXAMPLES
from tests.support.replicas import TOKEN, Replicas, running_replicas

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
LLM_KEY_ENV = "CLUSTER_LLM_KEY"
QUICKSTART = EXAMPLES.parent / "quickstart"


@dataclass
class Ran:
    """One in-process ``caxton`` run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def caxton(*args: str) -> Ran:
    """``caxton ARGS...`` in this process (the CLI the user runs), its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main.main(list(args))
    return Ran(code, out.getvalue(), err.getvalue())


@dataclass
class Cluster:
    replicas: Replicas
    nginx: str
    directory: Path
    repo: Path
    store_url: str

    def cli(self, *args: str) -> Ran:
        """``caxton ARGS --engine NGINX --token TOKEN``."""
        return caxton(*args, "--engine", self.nginx, "--token", self.replicas.token)

    def apply(self, *args: str) -> Ran:
        """``caxton apply REPO/agents --auto-approve ARGS`` through nginx."""
        return self.cli("apply", str(self.repo / "agents"), "--auto-approve", *args)

    def get(self, index: int, path: str) -> Any:
        """GET /api/v1/PATH on one replica directly (not through nginx)."""
        reply = httpx.get(f"{self.replicas[index].url}/api/v1{path}", headers=HEADERS, timeout=10)
        reply.raise_for_status()
        return reply.json()

    def running(self) -> list[int]:
        return [n for n, engine in enumerate(self.replicas) if engine.running]

    def leaders(self) -> list[int]:
        """The running replicas that say they lead the rollouts (``replica.leader`` of health/detailed)."""
        return [n for n in self.running() if self.get(n, "/health/detailed")["replica"]["leader"]]

    def leader(self) -> int:
        found = self.leaders()
        assert len(found) == 1, f"leaders: {found}"
        return found[0]

    def revisions(self, agent: str) -> dict[int, int | None]:
        """The revision each running replica serves ``agent`` at (None: it does not serve it)."""
        found: dict[int, int | None] = {}
        for n in self.running():
            agents = {a["name"]: a for a in self.get(n, "/agents")["agents"]}
            found[n] = agents[agent]["revision"] if agent in agents else None
        return found

    def answered_by(self, index: int, agent: str, content: Any = None) -> dict[str, Any]:
        """One message to ``agent`` sent to one replica directly: its reply (revision and all)."""
        reply = httpx.post(f"{self.replicas[index].url}/api/v1/agents/{agent}/messages", headers=HEADERS,
                           json={"content": content if content is not None else {"n": 0}}, timeout=30)
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()
        return found

    def events(self, agent: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(self.running()[0], f"/events?agent={agent}&limit=500")["events"]
        return found

    def stored_turns(self, agent: str, conversation: str, role: str = "user") -> list[str]:
        """The ``role`` turns of a conversation as the store keeps them, oldest first (read from PostgreSQL)."""
        import psycopg

        with psycopg.connect(self.store_url) as conn:
            rows = conn.execute("SELECT content FROM conversation_turns WHERE agent_id = %s AND conversation_id = %s"
                                " AND role = %s ORDER BY id", (agent, conversation, role)).fetchall()
        return [str(row[0]) for row in rows]

    def restore(self) -> None:
        """Start again every replica a test stopped (same port and data directory), each ready."""
        stopped = [n for n, engine in enumerate(self.replicas) if not engine.running]
        if stopped:
            self.replicas.start(*stopped)


@contextmanager
def running_cluster(directory: Path, store_url: str, *, llm_url: str, count: int = 3) -> Iterator[Cluster]:
    """``count`` replicas on ``store_url`` behind nginx, nothing applied yet; ``repo`` is a quickstart copy."""
    repo = directory / "repo"
    shutil.copytree(QUICKSTART, repo)
    config = ("server:\n  stream_heartbeat: 0.3s\nconversations:\n  max_turns: 100000\n"  # whole histories checked
              f"llm:\n  openai:\n    base_url: {llm_url}\n    api_key_env: {LLM_KEY_ENV}\n    retries: 0\n")
    with running_replicas(directory, store_url, count=count, config=config,
                          env={LLM_KEY_ENV: "sk-cluster-test"}) as replicas:
        with running_nginx(directory / "nginx", replicas.addresses) as nginx:
            yield Cluster(replicas, nginx, directory, repo, store_url)


@dataclass
class Traffic:
    """Messages through nginx from threads until stopped; every answer and every failure kept.

    ``send(agent, threads)``: WASM messages without a conversation (their revisions counted per replica's
    answer); ``converse(agent, conversations)``: one thread per conversation, each message a new turn
    ``"<conversation> turn <n>"``, its turn acknowledged (kept in ``turns``) on a 200.
    """

    base: str
    revisions: Counter[int] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    turns: dict[str, list[str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, agent: str, threads: int = 2) -> Traffic:
        for _ in range(threads):
            self._spawn(self._send, agent)
        return self

    def converse(self, agent: str, conversations: list[str]) -> Traffic:
        for conversation in conversations:
            self.turns[conversation] = []
            self._spawn(self._converse, agent, conversation)
        return self

    def __enter__(self) -> Traffic:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _post(self, client: httpx.Client, agent: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            reply = client.post(f"{self.base}/api/v1/agents/{agent}/messages", json=body, headers=HEADERS)
        except httpx.HTTPError as error:
            with self._lock:
                self.failures.append(f"{agent}: {type(error).__name__}: {error}")
            return None
        with self._lock:
            self.statuses[reply.status_code] += 1
            if reply.status_code != 200:
                self.failures.append(f"{agent}: {reply.status_code}: {reply.text[:300]}")
                return None
        found: dict[str, Any] = reply.json()
        return found

    def _send(self, agent: str) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                answer = self._post(client, agent, {"content": {"n": 1}})
                if answer is not None:
                    with self._lock:
                        self.revisions[int(answer["revision"])] += 1
                time.sleep(0.005)

    def _converse(self, agent: str, conversation: str) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                turn = f"{conversation} turn {len(self.turns[conversation])}"
                answer = self._post(client, agent, {"content": turn, "conversation_id": conversation})
                if answer is not None and not str(answer["reply"]["reply"]).endswith(turn):
                    with self._lock:
                        self.failures.append(f"{conversation}: the reply to {turn!r} is {answer['reply']!r}")
                elif answer is not None:
                    self.turns[conversation].append(turn)
                time.sleep(0.05)

    @property
    def answered(self) -> int:
        return self.statuses[200]

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` more messages were answered (whatever else happens meanwhile)."""
        target = self.answered + count
        deadline = time.monotonic() + timeout
        while self.answered < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.answered >= target, f"the traffic stalled: {self.statuses} {self.failures[:5]}"
