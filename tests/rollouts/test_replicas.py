"""Several engines on one PostgreSQL store (issue 14): each serves what any of them changed, one leads the rollouts.

In-process engines with separate data directories on one fresh database (``pg_url``); real time, polled
with generous deadlines. The kill -9 of a leader mid-canary with engine subprocesses is in
tests/rollouts/test_replicas_failover.py.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caxton.engine.core import Engine
from caxton.engine.intake import Prepared
from caxton.engine.state.records import Source
from caxton.errors import CaxtonError, LockHeld
from tests.rollouts import agents
from tests.rollouts.conftest import Load, sender
from tests.rollouts.test_apply_runner import change, final
from tests.support.poll import wait_for

#: Long steps: the rollout stays at its first step until the test moves it.
HELD = {"strategy": "canary", "steps": [50, 100], "interval": 30, "analysis": {"min_requests": 1000}}


@pytest.fixture
def replicas(replica_engines: Callable[..., Engine]) -> Callable[[], Engine]:
    """Start engines on ``pg_url``, each with its own data directory; all stopped at teardown."""
    names = itertools.count()
    return lambda: replica_engines(f"data-{next(names)}")


def serves(engine: Engine, revision: int, name: str = "echo") -> bool:
    return engine.send(name, {"n": 1})["revision"] == revision


def traffic(engine: Engine, name: str = "echo") -> dict[str, int]:
    route = engine.router.get(name)
    return route.traffic() if route is not None else {}


def held_canary(leader: Engine, follower: Engine) -> dict[str, Any]:
    """Deploy echo 1 through ``leader`` and start a held canary to 2 on it; wait until ``follower`` mirrors its
    split; return what the update answered."""
    leader.deploy(agents.spec("echo", 1), agents.module(1))
    started = leader.rollouts.update(Prepared.of(agents.spec("echo", 2, HELD), agents.module(2)),
                                     Source(actor="test"), strategy="canary")
    wait_for(lambda: traffic(follower) == {"2": 50, "1": 50}, what="the follower mirrors the split")
    return started


def rollout_events(engine: Engine) -> list[str]:
    return [e.what for e in engine.store.events(agent_id="echo", limit=500) if e.what.startswith("rollout_")]


def test_a_change_on_one_replica_is_served_by_the_others(replicas: Callable[[], Engine]) -> None:
    a, b, c = replicas(), replicas(), replicas()
    a.deploy(agents.spec("echo", 1), agents.module(1))
    for other in (b, c):
        wait_for(lambda other=other: serves(other, 1), what="revision 1 served by every replica")  # type: ignore[misc]
    serving_on_a = a.router.get("echo").backends[0].serving  # type: ignore[union-attr]

    b.deploy(agents.spec("echo", 2), agents.module(2))
    for other in (a, c):
        wait_for(lambda other=other: serves(other, 2), what="revision 2 served by every replica")  # type: ignore[misc]
    wait_for(lambda: serving_on_a.closing, what="the old revision drained on A")
    serving_on_b = b.router.get("echo").backends[0].serving  # type: ignore[union-attr]
    assert b.router.get("echo").backends[0].serving is serving_on_b, "B's own deploy made it restart its runtime"  # type: ignore[union-attr]

    c.suspend("echo")
    for other in (a, b):
        wait_for(lambda other=other: other.router.get("echo") is None, what="suspended everywhere")  # type: ignore[misc]
    with pytest.raises(CaxtonError, match="suspended"):
        a.send("echo", {"n": 1})
    a.resume("echo")
    wait_for(lambda: serves(c, 2), what="resumed everywhere")
    a.remove("echo")
    for other in (b, c):
        wait_for(lambda other=other: other.router.get("echo") is None, what="removed everywhere")  # type: ignore[misc]


def test_one_replica_leads_and_a_rollout_started_on_a_follower_is_driven_by_it(
        replicas: Callable[[], Engine]) -> None:
    leader, follower = replicas(), replicas()
    assert leader.replica is not None and follower.replica is not None
    assert leader.replica.leader and not follower.replica.leader
    leader.deploy(agents.spec("echo", 1), agents.module(1))
    wait_for(lambda: serves(follower, 1), what="revision 1 on the follower")

    started = follower.rollouts.update(Prepared.of(agents.spec("echo", 2, HELD), agents.module(2)),
                                       Source(actor="test"), strategy="canary")
    assert started["action"] == "rollout"
    assert "echo" not in follower.rollouts._runs  # left to the leader
    wait_for(lambda: "echo" in leader.rollouts._runs, what="the leader took the rollout over")
    for engine in (leader, follower):
        wait_for(lambda engine=engine: traffic(engine) == {"2": 50, "1": 50},  # type: ignore[misc]
                 what="the canary's split on every replica")
    state = follower.snapshot().agents[0].rollout
    assert state is not None and state.id == started["rollout"] and state.candidate_revision == 2

    shown = follower.promote("echo", Source(actor="ops"))  # forwarded to the leader
    assert shown["status"] == "succeeded"
    for engine in (leader, follower):
        wait_for(lambda engine=engine: traffic(engine) == {"2": 100}, what="promoted everywhere")  # type: ignore[misc]
        assert serves(engine, 2)
    wait_for(lambda: "rollout_succeeded" in rollout_events(leader), what="the promotion's event")
    assert rollout_events(leader).count("rollout_succeeded") == 1
    assert leader.store.agent("echo").revision == 2  # type: ignore[union-attr]


def test_an_abort_on_a_follower_rolls_back_on_every_replica(replicas: Callable[[], Engine]) -> None:
    leader, follower = replicas(), replicas()
    started = held_canary(leader, follower)
    with Load(sender(follower), threads=2) as load:
        wait_for(lambda: len(load.replies) > 20, what="load on the follower")
        shown = follower.abort("echo", Source(actor="ops"))
        assert shown["status"] == "rolled_back" and shown["id"] == started["rollout"]
        wait_for(lambda: traffic(follower) == {"1": 100}, what="rolled back on the follower")
    load.assert_only_failures_of(None)
    assert traffic(leader) == {"1": 100}
    wait_for(lambda: "rollout_rolled_back" in rollout_events(leader), what="the rollback's event")
    assert rollout_events(leader).count("rollout_rolled_back") == 1


def test_the_next_engine_takes_the_leadership_and_finishes_the_rollout(replicas: Callable[[], Engine]) -> None:
    first, second = replicas(), replicas()
    started = held_canary(first, second)
    first.stop()  # its connection (and the leadership lock) goes
    assert second.replica is not None
    wait_for(lambda: second.replica.leader and "echo" in second.rollouts._runs,  # type: ignore[union-attr]
             what="the survivor leads and drives the rollout")
    assert second.rollouts._runs["echo"].rollout.id == started["rollout"]
    assert traffic(second) == {"2": 50, "1": 50}, "the new leader resumes at the stored step"
    second.promote("echo", Source(actor="ops"))
    assert serves(second, 2)
    wait_for(lambda: "rollout_succeeded" in rollout_events(second), what="the promotion's event")
    assert rollout_events(second).count("rollout_succeeded") == 1


def test_of_two_replicas_racing_to_apply_exactly_one_applies(replicas: Callable[[], Engine]) -> None:
    a, b = replicas(), replicas()
    a.deploy(agents.spec("echo", 1), agents.module(1))
    wait_for(lambda: serves(b, 1), what="revision 1 on B")
    serial = a.store.serial()
    outcomes: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def apply(engine: Engine, holder: str, version: int) -> None:
        barrier.wait()
        try:
            lease = engine.lock.acquire(holder, "race", 60)
        except LockHeld as error:
            outcomes[holder] = error
            return
        body = {"plan_id": f"plan-{holder}", "engine_serial": serial, "lock_token": lease.token,
                "changes": [change("echo", version, "update")]}
        outcomes[holder] = final(engine, engine.applies.submit(body)["id"])
        engine.lock.release(lease.token)

    threads = [threading.Thread(target=apply, args=(engine, f"ci-{n}", n + 2)) for n, engine in enumerate((a, b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    applied = {holder: view for holder, view in outcomes.items() if isinstance(view, dict)}
    refused = [error for error in outcomes.values() if isinstance(error, LockHeld)]
    assert len(applied) == 1 and len(refused) == 1, outcomes
    (holder, view), = applied.items()
    assert view["status"] == "succeeded", view
    version = int(holder[-1]) + 2
    assert [r.number for r in a.store.revisions("echo")] == [1, 2]  # one new revision: applied once
    for engine in (a, b):
        wait_for(lambda engine=engine: engine.send("echo", {"n": 1})["reply"] == {"v": version},  # type: ignore[misc]
                 what="the applied revision on both replicas")


def test_a_leader_that_loses_its_connection_stops_driving_and_the_rollout_ends_once(
        replicas: Callable[[], Engine], pg_url: str) -> None:
    import psycopg

    first, second = replicas(), replicas()
    assert first.replica is not None and second.replica is not None and first.replica.leader
    started = held_canary(first, second)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the leader's dedicated connection dies
        conn.execute("SELECT pg_terminate_backend(%s)", (first.replica.feed.backend_pid,))
    wait_for(lambda: first.replica.lost == 1, what="the old leader noticed")  # type: ignore[union-attr]
    # one of them leads again (the old one may win the lock back once reconnected) and drives the rollout
    drivers = wait_for(lambda: [e for e in (first, second) if e.replica.leader and "echo" in e.rollouts._runs],  # type: ignore[union-attr]
                       what="a leader drives the rollout again")
    assert len(drivers) == 1  # type: ignore[arg-type]
    for engine in (first, second):
        assert traffic(engine) == {"2": 50, "1": 50}, "the split held through the change of leader"
    follower = second if drivers[0] is first else first  # type: ignore[index]
    assert follower.abort("echo", Source(actor="ops"))["status"] == "rolled_back"
    for engine in (first, second):
        wait_for(lambda engine=engine: traffic(engine) == {"1": 100}, what="rolled back everywhere")  # type: ignore[misc]
    def whats() -> list[str]:
        return [e.what for e in first.store.events(agent_id="echo", limit=500)
                if (e.data or {}).get("rollout") == started["rollout"]]

    wait_for(lambda: "rollout_rolled_back" in whats(), what="the rollback's event")
    assert whats().count("rollout_rolled_back") == 1 and "rollout_succeeded" not in whats(), whats()


def test_the_state_feed_sees_a_change_whose_notification_it_missed(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    from caxton.engine.state.feed import StateFeed
    from caxton.engine.state.store import Store

    store = Store.open(tmp_path, pg_url)
    feed = StateFeed(pg_url, lead=False)
    try:
        seen = feed.observe(0.01)
        assert seen is not None and not feed.leader
        with psycopg.connect(pg_url, autocommit=True) as conn:  # a write that notifies nobody
            conn.execute("UPDATE meta SET value = %s WHERE key = 'serial'", (str(seen.serial + 7),))
        again = feed.observe(0.01)
        assert again is not None and again.serial == seen.serial + 7 and again.rollouts == seen.rollouts
    finally:
        feed.close()
        store.close()
