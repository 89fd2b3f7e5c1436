"""PostgreSQL restarts under load (issue 14, "Bad input and faults"): a real engine subprocess whose state is on a
PostgreSQL server of the test's own, stopped (``pg_ctl stop -m fast``) while messages flow, then started again.

While the server is down: messages to a WASM agent keep being answered; what needs the store fails at once with
503 ``store_unavailable`` (``caxton apply``: exit 1, the store named with its password hidden, the server's own
reason and the hint); a config agent's conversation is refused the same way (its message without a conversation is
answered); ``/readyz`` stays 200 and
``/health/detailed`` is degraded with the store unhealthy; the outage is logged once; nothing changes. Once the
server is back (same data directory and socket) the first call works and the next apply too, in the same engine
process (no restart), and the engine stops cleanly while the server is down. Below it, on a ``Store``: a restart
between two calls is invisible to every pooled connection, a transaction cut by the shutdown fails as
``store_unavailable`` and leaves nothing, agent log lines written meanwhile are kept until the database is back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from caxton.engine.logs import AgentLogs
from caxton.engine.state.history_db import HistoryDB
from caxton.engine.state.records import Source
from caxton.engine.state.store import Store
from caxton.errors import StoreUnavailable

from tests.conftest import CliResult
from tests.engine.test_postgres_store import SECRET, states, with_password
from tests.support.engine import EngineProcess, no_memory, running_engine
from tests.support.git import DesiredRepo
from tests.support.poll import wait_for
from tests.support.postgres import (  # noqa: F401  (the fixtures)
    RestartablePostgres,
    create_database,
    own_pg_server,
    pg_server_to_stop,
)

V1 = "/api/v1"
APPLIED = {"data-processor": ("Active", 1), "scorer": ("Running", 1), "summarizer": ("Active", 1),
           "word-count": ("Running", 1)}


class Load:
    """Messages to one agent, one after the other from a thread, until stopped: every answer is kept."""

    def __init__(self, url: str, agent: str) -> None:
        self._url, self._agent = url, agent
        self.answered = 0
        self.failures: list[tuple[int, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, timeout=30.0) as client:
            while not self._stop.is_set():
                response = client.post(f"{V1}/agents/{self._agent}/messages", json={"content": {"n": self.answered}})
                if response.status_code == 200 and response.json()["agent"] == self._agent:
                    self.answered += 1
                else:
                    self.failures.append((response.status_code, response.text))

    def more_than(self, count: int) -> bool:
        return self.answered > count

    @contextmanager
    def running(self) -> Iterator[Load]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(30.0)


def error_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_postgresql_down_under_load_engine_keeps_serving_refuses_changes_and_recovers_without_restart(
        tmp_path: Path, pg_server_to_stop: RestartablePostgres, desired_repo: DesiredRepo, run_cli: Any) -> None:
    own_pg_server = pg_server_to_stop
    url = with_password(own_pg_server.url)
    with running_engine(tmp_path, env={"CAXTON_STORE_URL": url}, config=no_memory(tmp_path)) as engine:
        applied: CliResult = run_cli("apply", str(desired_repo.agents), "--engine", engine.url, "--auto-approve")
        assert applied.code == 0, applied.err
        assert states(engine) == APPLIED
        assert engine.proc is not None
        pid = engine.proc.pid
        desired_repo.edit("agents/word-count.md", 'version: "1.0.0"', 'version: "1.0.1"')

        with Load(engine.url, "scorer").running() as load, httpx.Client(base_url=engine.url) as api:
            wait_for(lambda: load.more_than(20), timeout=30, what="messages answered before the outage")
            own_pg_server.stop()
            answered_at_stop = load.answered

            refused: CliResult = run_cli("apply", str(desired_repo.agents), "--engine", engine.url, "--auto-approve")
            assert refused.code == 1, refused.out + refused.err
            assert "error: the PostgreSQL store at postgresql://postgres:***@/postgres?host=" in refused.err
            assert "is unavailable: " in refused.err and "No such file or directory" in refused.err  # the reason
            assert "without restarting the engine" in refused.err  # the hint
            assert SECRET not in refused.out + refused.err
            assert error_code(api.get(f"{V1}/state")) == (503, "store_unavailable")
            assert error_code(api.post(f"{V1}/lock", json={"holder": "ci", "ttl": 60})) == (
                503, "store_unavailable")
            assert error_code(api.post(f"{V1}/agents/summarizer/messages",  # its history is in the store
                                       json={"content": {"text": "hi"}, "conversation_id": "c1"})) == (
                503, "store_unavailable")
            stateless = api.post(f"{V1}/agents/summarizer/messages", json={"content": {"text": "hi"}})
            assert stateless.status_code == 200, stateless.text  # no conversation: nothing to keep

            assert api.get("/readyz").status_code == 200  # WASM agents are still served: stay behind the balancer
            health = api.get(f"{V1}/health/detailed").json()
            assert health["status"] == "degraded" and health["serial"] is None
            assert health["store"]["status"] == "unhealthy" and health["store"]["backend"] == "postgres"
            assert "store_unavailable" not in health["store"]["message"] and "is unavailable" in health["store"]["message"]
            assert health["store"]["unavailable_seconds"] >= 0 and SECRET not in str(health)
            assert health["runtimes"]["scorer"]  # what the engine runs, known without the store
            checked: CliResult = run_cli("health", "--detailed", "--engine", engine.url)
            assert checked.code == 1 and "engine " in checked.out and ": degraded" in checked.out
            assert "  store: unhealthy (for " in checked.out and "is unavailable" in checked.out

            wait_for(lambda: load.more_than(answered_at_stop + 50), timeout=30,
                       what="messages answered while PostgreSQL is down")
            own_pg_server.start()

            assert states(engine) == APPLIED  # the first call works; the refused apply changed nothing
            again: CliResult = run_cli("apply", str(desired_repo.agents), "--engine", engine.url, "--auto-approve")
            assert again.code == 0, again.err
            assert states(engine)["word-count"] == ("Running", 2)
            reply = api.post(f"{V1}/agents/summarizer/messages", json={"content": {"text": "hi"}, "conversation_id": "c1"})
            assert reply.status_code == 200, reply.text
            answered_after = load.answered
            wait_for(lambda: load.more_than(answered_after + 20), timeout=30, what="messages after the outage")

        assert load.failures == []  # not one message lost or refused, before, during or after
        assert engine.proc is not None and engine.proc.pid == pid  # never restarted
        log = _log_when_written(engine)
        own_pg_server.stop()
        assert engine.terminate() == 0  # a clean stop while the database is down
        stopped = engine.log_text()[len(log):]
        assert "Traceback" not in stopped and "Finished server process" in stopped
    assert log.count("(caxton) is unavailable") == 1  # the store's outage: one line, not a storm
    assert "(caxton) answers again after" in log
    assert SECRET not in log and "Traceback" not in log


def _log_when_written(engine: EngineProcess) -> str:
    wait_for(lambda: "answers again after" in engine.log_text(), timeout=10, what="the recovery logged")
    return engine.log_text()


@pytest.fixture
def store(tmp_path: Path, own_pg_server: RestartablePostgres) -> Iterator[Store]:
    opened = Store.open(tmp_path / "data", create_database(own_pg_server.url))
    try:
        yield opened
    finally:
        opened.close()


def _in_parallel(call: Callable[[], object], count: int) -> None:
    """``call`` in ``count`` threads at once (so the pool holds several connections)."""
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        call()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_a_restart_between_calls_is_invisible_to_every_pooled_connection(
        store: Store, pg_server_to_stop: RestartablePostgres) -> None:
    def write() -> None:
        with store.transaction() as tx:
            tx.event("noted", Source(actor="test"), message="x")

    _in_parallel(write, 4)  # four pooled connections, all cut by the restart below
    serial = store.serial()
    pg_server_to_stop.stop()
    pg_server_to_stop.start()
    for _ in range(6):  # more calls than stale connections: none of them fails
        write()
    assert store.serial() == serial + 6 and store.outage is None


def test_a_transaction_cut_by_the_shutdown_fails_as_store_unavailable_and_the_next_one_works(
        store: Store, pg_server_to_stop: RestartablePostgres) -> None:
    with pytest.raises(StoreUnavailable) as cut:
        with store.transaction() as tx:
            tx.event("noted", Source(actor="test"), message="before the shutdown")
            pg_server_to_stop.stop()  # terminates this session: the next statement finds it gone
            tx.event("noted", Source(actor="test"), message="after it")
    assert cut.value.http_status == 503 and "is unavailable" in cut.value.message
    with pytest.raises(StoreUnavailable):  # down: every call fails at once, with the server's reason
        store.serial()
    assert store.outage is not None and "No such file or directory" in store.outage["reason"]
    pg_server_to_stop.start()
    assert store.events(limit=10) == []  # the cut transaction left nothing
    with store.transaction() as tx:
        tx.event("noted", Source(actor="test"), message="after the restart")
    assert [e.message for e in store.events(limit=10)] == ["after the restart"] and store.outage is None


def test_agent_log_lines_written_while_the_database_is_down_wait_and_are_written_once_it_is_back(
        store: Store, pg_server_to_stop: RestartablePostgres) -> None:
    history = HistoryDB(store)
    logs = AgentLogs(flush_interval=3600.0)
    logs.attach(history, background=False)
    try:
        logs.add("scorer", "info", "before")
        logs.flush()
        pg_server_to_stop.stop()
        logs.add("scorer", "info", "during")
        with pytest.raises(StoreUnavailable):
            logs.flush()
        with pytest.raises(StoreUnavailable):  # a config agent's conversation is refused before its model is asked
            history.ensure_available()
        pg_server_to_stop.start()
        history.ensure_available()
        assert [line["message"] for line in logs.tail("scorer")] == ["before", "during"]
    finally:
        logs.detach()
        history.close()
