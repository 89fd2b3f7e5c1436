"""Rollout analysis over every replica (issue 14): engines on one PostgreSQL store flush their per-revision samples,
and the engine driving a rollout counts every engine's messages; on SQLite nothing is flushed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from caxton.engine.core import Engine
from caxton.engine.rollouts.model import RUNNING, Rollout
from caxton.engine.rollouts.samples import KEEP_S, Shared
from caxton.engine.state import rollouts as records
from caxton.engine.state.history_db import HistoryDB
from caxton.engine.state.records import utcnow
from caxton.engine.state.store import Store
from tests.rollouts import agents
from tests.rollouts.conftest import Load, sender, start
from tests.support.replica_engines import following

FAULTY_CANARY = {"strategy": "canary", "steps": [50, 100], "interval": 1.0,
                 "analysis": {"min_requests": 20, "max_error_rate": 0.05}}
#: A step without enough data on the driving engine rolls back: it must count the other engine's messages
#: (which reach it within about a second: an engine learns of a rollout and flushes its samples every 0.5 s).
STRICT_CANARY = {"strategy": "canary", "steps": [100], "interval": 4.0,
                 "analysis": {"min_requests": 10, "on_no_data": "fail"}}


def two_engines(replica_engines: Callable[..., Engine]) -> tuple[Engine, Engine]:
    """A (drives the rollouts) and B, both serving ``echo`` revision 1 from the same store."""
    a = replica_engines("a")
    a.deploy(agents.spec("echo", 1), agents.module(1))
    b = replica_engines("b")  # recovers echo revision 1 from the store
    assert b.router.get("echo") is not None
    return a, b


def test_a_breach_seen_only_by_another_engine_rolls_the_canary_back(
    replica_engines: Callable[..., Engine],
) -> None:
    a, b = two_engines(replica_engines)
    started = start(a, FAULTY_CANARY, agents.module(2, faulty=True))
    with following(a, b, "echo"), Load(sender(b)) as load:  # every message goes to B
        rollout = a.rollouts.wait(started["rollout"], timeout=30)
    assert rollout.status == "rolled_back", rollout.reason
    assert "error_rate" in rollout.reason and "revision 2" in rollout.reason
    failed = [m for m in rollout.measurements if m["verdict"] == "fail"]
    assert failed and failed[0]["requests"] >= 20 and failed[0]["value"] > 0.05
    assert {r.revision for r in load.failures()} == {2}  # the failures A acted on were B's
    assert a.router.get("echo").traffic() == {"1": 100}  # type: ignore[union-attr]


def test_the_driving_engine_without_messages_is_not_without_data(
    replica_engines: Callable[..., Engine],
) -> None:
    a, b = two_engines(replica_engines)
    started = start(a, STRICT_CANARY, agents.module(2))
    with following(a, b, "echo"), Load(sender(b)) as load:
        rollout = a.rollouts.wait(started["rollout"], timeout=30)
    assert rollout.status == "succeeded", rollout.reason
    counted = [m for m in rollout.measurements if m["metric"] == "error_rate"]
    assert {m["step"] for m in counted if m["verdict"] == "pass"} == {0}
    assert all(m["requests"] >= 10 for m in counted if m["verdict"] == "pass")
    load.assert_only_failures_of(None)


def test_samples_are_flushed_per_second_read_back_by_the_others_and_pruned(tmp_path: Path, pg_url: str) -> None:
    store = Store.open(tmp_path, pg_url)
    db = HistoryDB(store)
    now = [1000.25]
    mine, other = (Shared(db, name, lambda: now[0]) for name in ("e1", "e2"))
    try:
        mine.flush()
        assert mine.recorder("echo", 2) is None  # no rollout in flight: nothing is counted
        records.save(store, _rollout("echo", RUNNING))
        mine.flush()
        tally = mine.recorder("echo", 2)
        assert tally is not None and mine.recorder("other", 1) is None
        for n in range(10):
            tally.record(0.002, ok=n != 0)
        now[0] = 1001.5
        for _ in range(5):
            tally.record(0.2, ok=True)
        assert mine.flush() == 2  # one row per second
        seen = other.elsewhere("echo", 2, since=999.5)
        assert (seen.requests, seen.errors) == (15, 1)
        assert seen.p95_ms() is not None and seen.p95_ms() >= 200  # type: ignore[operator]
        assert other.elsewhere("echo", 2, since=1000.5).requests == 5  # whole seconds after the window began
        assert mine.elsewhere("echo", 2, since=999.5).requests == 0  # an engine's own rows are in its window
        assert other.elsewhere("echo", 1, since=999.5).requests == 0
        now[0] += KEEP_S + 120
        mine.flush()
        assert other.elsewhere("echo", 2, since=0).requests == 0  # older than KEEP_S: deleted
        records.save(store, _rollout("echo", "succeeded"))
        mine.flush()
        assert mine.recorder("echo", 2) is None
    finally:
        db.close()
        store.close()


def test_an_engine_on_sqlite_shares_nothing(echo_engine: Engine) -> None:
    assert echo_engine.windows.shared is None
    with Load(sender(echo_engine)):
        started = start(echo_engine, {**STRICT_CANARY, "interval": 0.3}, agents.module(2))
        assert echo_engine.rollouts.wait(started["rollout"], timeout=20).status == "succeeded"
    with echo_engine.store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) AS n FROM rollout_samples").fetchone()["n"] == 0


def _rollout(agent: str, status: str) -> Rollout:
    now = utcnow()
    return Rollout(id=f"r-{agent}", agent_id=agent, name=agent, strategy="canary", status=status, stable_revision=1,
                   candidate_revision=2, candidate_version="1.0.2", spec={}, started_at=now, updated_at=now)
