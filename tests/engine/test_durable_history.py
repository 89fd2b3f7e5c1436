"""Durable conversations (with tool exchanges, issue 15) and agent logs (issue 13): in the store, bounded, and
back after kill -9."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from caxton.client import agents as agent_api
from caxton.engine.serving.conversations import DurableConversationStore
from caxton.llm.conversations import Turn
from caxton.engine.core import Engine
from caxton.engine.state.history_db import HistoryDB
from caxton.engine.logs import AgentLogs
from caxton.engine.state.store import Store
from caxton.spec.project import ProjectConfig
from tests.conftest import CliResult
from tests.engine.helpers import config_spec
from tests.support.engine import running_engine


@pytest.fixture
def db(tmp_path: Path, store_url: str | None) -> Iterator[HistoryDB]:
    """The history database on both backends (SQLite, PostgreSQL)."""
    store = Store.open(tmp_path, store_url)
    history = HistoryDB(store)
    yield history
    history.close()
    store.close()


def pair(n: int) -> list[Turn]:
    return [Turn(role="user", content=f"q{n}"), Turn(role="assistant", content=f"a{n}")]


def exchange(n: int) -> list[Turn]:
    """One message of an agent with tools: the question, a round of two calls, the answer."""
    calls = [{"id": f"c{n}_{i}", "type": "function", "function": {"name": "calculator", "arguments": f'{{"n": {i}}}'}}
             for i in (1, 2)]
    return [Turn(role="user", content=f"q{n}"), Turn(role="assistant", content="", tool_calls=calls),
            Turn(role="tool", content='{"result": 1}', tool_call_id=f"c{n}_1"),
            Turn(role="tool", content='{"result": 2}', tool_call_id=f"c{n}_2"),
            Turn(role="assistant", content=f"a{n}")]


def rows(db: HistoryDB, table: str) -> int:
    with db.read() as conn:
        return int(conn.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"])


def test_turns_are_read_back_by_a_new_process_and_capped(db: HistoryDB) -> None:
    now = [1000.0]
    first = DurableConversationStore(db, max_turns=4, clock=lambda: now[0], trim_every=2)
    assert first.begin("a", "c1", limit=5) is True
    counts = []
    for n in range(6):
        first.append("a", "c1", pair(n))
        counts.append(rows(db, "conversation_turns"))
    assert counts == [2, 4, 6, 4, 6, 4]  # the cap holds in the store (trimmed every 2nd append)
    again = DurableConversationStore(db, max_turns=4, clock=lambda: now[0])  # a restarted engine
    assert again.history("a", "c1") == pair(4) + pair(5)
    assert again.begin("a", "c1", limit=5) is False  # a continued conversation, not a new one
    assert again.count("a") == 1 and again.history("a", "other") == []


def test_tool_exchanges_are_read_back_whole_and_never_from_inside(db: HistoryDB) -> None:
    first = DurableConversationStore(db, max_turns=8, trim_every=1)
    first.append("a", "c1", exchange(0))
    assert DurableConversationStore(db, max_turns=8).history("a", "c1") == exchange(0)  # calls and ids kept
    first.append("a", "c1", exchange(1))  # 10 turns: the store keeps the newest 8, from q0's first tool turn
    assert rows(db, "conversation_turns") == 8
    again = DurableConversationStore(db, max_turns=8)
    assert again.history("a", "c1") == [exchange(0)[-1], *exchange(1)]  # q0's tool turns went with their call
    assert again.begin("a", "c1", limit=5) is False and again.history("a", "c1")[0]["role"] == "assistant"


def test_retention_closes_idle_conversations_and_prunes_old_turns(db: HistoryDB) -> None:
    now = [1000.0]
    store = DurableConversationStore(db, idle_ttl=60, clock=lambda: now[0], prune_every=3600)
    store.begin("a", "old", limit=5)
    store.append("a", "old", pair(0))
    now[0] += 30
    store.append("a", "recent", pair(1))
    now[0] += 40  # "old" idle for 70 s, "recent" for 40 s
    restarted = DurableConversationStore(db, idle_ttl=60, clock=lambda: now[0])
    assert restarted.history("a", "old") == [] and restarted.history("a", "recent") == pair(1)
    assert restarted.prune() == 2 and rows(db, "conversation_turns") == 2


def test_end_and_clear_delete_from_the_store(db: HistoryDB) -> None:
    store = DurableConversationStore(db)
    for cid in ("c1", "c2"):
        store.append("a", cid, pair(0))
    store.append("b", "c1", pair(0))
    store.end("a", "c1")
    store.clear("b")
    assert DurableConversationStore(db).history("a", "c2") == pair(0) and rows(db, "conversation_turns") == 2


def test_log_lines_go_to_the_store_capped_and_aged(db: HistoryDB) -> None:
    now = [1000.0]
    logs = AgentLogs(clock=lambda: now[0])
    logs.add("a", "info", "before attach")
    logs.attach(db, max_lines=3, retention=100, background=False)
    for n in range(4):
        logs.add("a", 2, f"line {n}", revision=1)
    logs.flush()
    assert rows(db, "agent_logs") == 3
    reader = AgentLogs(clock=lambda: now[0])  # a restarted engine
    reader.attach(db, max_lines=3, retention=100, background=False)
    assert [line["message"] for line in reader.tail("a", 10)] == ["line 1", "line 2", "line 3"]
    assert reader.tail("a", 1)[0]["level"] == "warning" and reader.tail("a", 1)[0]["revision"] == 1
    now[0] += 101
    assert reader.tail("a", 10) == []  # older than the retention: not shown, deleted at the next write
    reader.add("b", "info", "new")
    reader.flush()
    assert rows(db, "agent_logs") == 1
    reader.detach()
    logs.detach()


def test_the_background_flusher_writes_within_its_interval(db: HistoryDB) -> None:
    logs = AgentLogs(flush_interval=0.05)
    logs.attach(db)
    logs.add("a", "info", "hello")
    deadline = time.monotonic() + 10
    while rows(db, "agent_logs") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rows(db, "agent_logs") == 1
    logs.detach()


def test_lines_pending_at_stop_are_written(db: HistoryDB) -> None:
    logs = AgentLogs(flush_interval=3600)
    logs.attach(db)
    logs.add("a", "error", "last words")
    assert rows(db, "agent_logs") == 0
    logs.detach()
    assert rows(db, "agent_logs") == 1


def test_the_settings_are_checked() -> None:
    config = ProjectConfig.model_validate(
        {"conversations": {"max_turns": 10, "retention": "2h"}, "logging": {"agent_log_lines": 50}})
    assert config.conversations.retention == 7200 and config.logging.agent_log_lines == 50
    for bad in ({"conversations": {"max_turns": 1}}, {"conversations": {"ttl": "1h"}},
                {"logging": {"agent_log_lines": 0}}):
        with pytest.raises(ValueError):
            ProjectConfig.model_validate(bad)


def test_conversation_and_logs_survive_kill_9(tmp_path: Path, run_cli: Callable[..., CliResult],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with running_engine(tmp_path) as engine, engine.client() as client:
        agent_api.deploy(client, config_spec("Talker"))
        agent_api.deploy(client, config_spec("Clerk", tools=["calculator"]))
        for text in ("first-question", "second-question"):
            agent_api.send(client, "talker", text, conversation_id="c1")
        agent_api.send(client, "clerk", 'sum\n/tool calculator {"expression": "6 * 7"}', conversation_id="c1")
        database = engine.data_dir / "engine.db"
        deadline = time.monotonic() + 10  # the flusher writes the deploy's log line within 0.25 s
        while not _logged(database, "serving") and time.monotonic() < deadline:
            time.sleep(0.05)
        engine.kill()
        engine.start()
        reply = agent_api.send(client, "talker", "third-question", conversation_id="c1")
        text = reply.model_dump_json()
        assert "first-question" in text and "second-question" in text and "third-question" in text
        continued = agent_api.send(client, "clerk", "and then?", conversation_id="c1").reply
        assert isinstance(continued, dict)  # the earlier call and its result are in the transcript
        assert 'call_1: calculator {"expression": "6 * 7"}\n### tool call_1\n{"result":42}' in continued["reply"]
        monkeypatch.setenv("CAXTON_ENGINE_URL", engine.url)
        logs = run_cli("agents", "logs", "talker", "--output", "json")
    assert logs.code == 0, logs.err
    messages = [line["message"] for line in json.loads(logs.out)]
    assert "revision 1 (1.0.0) serving" in messages and "recovered at revision 1" in messages


def _logged(database: Path, word: str) -> bool:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return bool(conn.execute("SELECT 1 FROM agent_logs WHERE message LIKE ?", (f"%{word}%",)).fetchone())
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def test_the_engine_applies_the_settings_and_reads_history_after_a_restart(
        make_engine_inproc: Callable[..., Engine], tmp_path: Path) -> None:
    config = ProjectConfig.model_validate({"conversations": {"max_turns": 2}, "logging": {"agent_log_lines": 2}})
    engine = make_engine_inproc(config)
    engine.deploy(config_spec("Short"), None)
    for text in ("one-question", "two-question"):
        engine.send("short", text, conversation_id="c")
    engine.stop()
    again = make_engine_inproc(config)  # same data dir
    reply = json.dumps(again.send("short", "three-question", conversation_id="c"))
    assert "two-question" in reply and "one-question" not in reply  # max_turns: 2 (one exchange) kept
    assert len(again.agent_logs("short", 100)["lines"]) == 2
