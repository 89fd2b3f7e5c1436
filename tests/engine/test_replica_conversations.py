"""Conversations across replicas (issue 14): engines on one PostgreSQL store keep a conversation on its pinned revision
and give the model its whole history, whichever engine each message reaches."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import pytest

from caxton.engine.core import Engine
from caxton.engine.intake import Prepared
from caxton.engine.state.records import Source
from tests.engine.helpers import config_spec
from tests.rollouts import agents
from tests.rollouts.conftest import Load
from tests.support.openai_server import OpenAITestServer
from tests.support.poll import wait_for
from tests.support.replica_engines import following

KEY_ENV = "REPLICA_LLM_KEY"


def stored_pin(engine: Engine, agent: str, conversation: str) -> int | None:
    with engine.store.reading() as conn:
        row = conn.execute("SELECT revision FROM rollout_pins WHERE agent_id = ? AND conversation_id = ?",
                           (agent, conversation)).fetchone()
    return None if row is None else int(row["revision"])


def test_a_conversation_keeps_its_revision_on_every_replica_when_the_weights_move(
    replica_engines: Callable[..., Engine],
) -> None:
    a = replica_engines("a")
    a.deploy(agents.spec("echo", 1), agents.module(1))
    b = replica_engines("b")
    # 10 % then 50 %: a conversation started at 10 % whose id hashes into [10, 50) would move to the candidate
    # on an engine that places it again instead of reading its pin. Step 1 passes on A's load; step 2 (the
    # conversations' ~80 messages, fewer than 100 on the candidate) never has enough data: it holds.
    rollout = {"strategy": "canary", "steps": [10, 50, 100], "interval": 1.0,
               "analysis": {"min_requests": 100, "on_no_data": "pause"}}
    a.rollouts.start(Prepared.of(agents.spec("echo", 2, rollout), agents.module(2)), Source(actor="test"),
                     strategy="canary")
    conversations = [f"conv-{n}" for n in range(40)]
    first: dict[str, int] = {}
    with following(a, b, "echo"):
        wait_for(lambda: b.router.get("echo").traffic() == {"2": 10, "1": 90}, what="B at step 1")  # type: ignore[union-attr]
        for conversation in conversations:  # each starts on B, which pins it in the store before replying
            first[conversation] = b.send("echo", {"n": 0}, conversation)["revision"]
            assert stored_pin(a, "echo", conversation) == first[conversation]
        # on the event loop: a conversation B knows is answered there; placing a new one goes to a thread
        assert b.send_now("echo", {"n": 0}, "conv-0")["revision"] == first["conv-0"]  # type: ignore[index]
        assert b.send_now("echo", {"n": 0}, "conv-new") is None and stored_pin(a, "echo", "conv-new") is None
        with Load(lambda _: a.send("echo", {"n": 1}), threads=2, conversation=lambda k, n: None):
            wait_for(lambda: a.rollouts.active("echo").step == 1, timeout=30, what="A at step 2")  # type: ignore[union-attr]
        wait_for(lambda: b.router.get("echo").traffic() == {"2": 50, "1": 50}, what="B at step 2")  # type: ignore[union-attr]
        later = {c: (a.send("echo", {"n": 2}, c)["revision"], b.send("echo", {"n": 3}, c)["revision"])
                 for c in conversations}
    assert {c: revs for c, revs in later.items() if revs != (first[c], first[c])} == {}
    assert set(first.values()) == {1, 2}  # both revisions had conversations
    moved = [c for c in conversations if first[c] == 1 and a.router.get("echo").pick(c).revision == 2]  # type: ignore[union-attr]
    assert moved, "no conversation would have moved: the test shows nothing"


def test_a_conversation_an_engine_saw_before_the_rollout_keeps_its_revision_on_every_engine(
    replica_engines: Callable[..., Engine],
) -> None:
    a = replica_engines("a")
    a.deploy(agents.spec("echo", 1), agents.module(1))
    b = replica_engines("b")
    # ids the 50 % step places on the candidate: only B's memory says they are on revision 1
    early = [c for c in (f"early-{n}" for n in range(100)) if zlib.crc32(c.encode()) % 100 < 50][:8]
    assert all(b.send("echo", {"n": 0}, c)["revision"] == 1 for c in early)
    rollout = {"strategy": "canary", "steps": [50, 100], "interval": 60.0}
    a.rollouts.start(Prepared.of(agents.spec("echo", 2, rollout), agents.module(2)), Source(actor="test"),
                     strategy="canary")
    with following(a, b, "echo"):
        wait_for(lambda: b.router.get("echo").traffic() == {"2": 50, "1": 50}, what="B at step 1")  # type: ignore[union-attr]
        assert {c: b.send("echo", {"n": 1}, c)["revision"] for c in early} == dict.fromkeys(early, 1)
        assert {c: a.send("echo", {"n": 2}, c)["revision"] for c in early} == dict.fromkeys(early, 1)
    assert {a.router.get("echo").pick(c).revision for c in early} == {2}  # type: ignore[union-attr]


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch, openai_server: OpenAITestServer) -> dict[str, Any]:
    monkeypatch.setenv(KEY_ENV, "sk-replica-test")
    return {"openai": {"base_url": openai_server.url, "api_key_env": KEY_ENV, "retries": 0}}


def test_a_conversation_alternating_between_replicas_sends_the_model_its_whole_history(
    replica_engines: Callable[..., Engine], llm: dict[str, Any], openai_server: OpenAITestServer,
) -> None:
    bounds = {"max_turns": 6}  # the same bounds as on one engine: the newest 6 turns
    a = replica_engines("a", llm=llm, conversations=bounds)
    a.deploy(config_spec("chat", llm={"provider": "openai", "model": "tiny"}), None)
    b = replica_engines("b", llm=llm, conversations=bounds)
    sent: list[list[tuple[str, str]]] = []
    for n in range(6):
        reply = (a, b)[n % 2].send("chat", f"question {n}", "talk")
        assert reply["reply"]["reply"].endswith(f"question {n}")
        sent.append([(m["role"], m["content"]) for m in openai_server.requests[-1].body["messages"][1:]])
    for n, said in enumerate(sent):
        earlier: list[tuple[str, str]] = []
        for k in range(n):
            earlier += [("user", f"question {k}"), ("assistant", f"echo(tiny) #{min(2 * k, 6) + 2}: Request: question {k}")]
        assert said == [*earlier[-6:], ("user", f"Request: question {n}")], f"message {n} on {'AB'[n % 2]}"
