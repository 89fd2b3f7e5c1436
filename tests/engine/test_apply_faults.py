"""No apply stays ``running`` after a fault (issue 14, "the apply lease is not wedged", "no partial state"), with
in-process engines on PostgreSQL:

- the applies of a dead engine: a live engine ends them as ``interrupted`` with a reason naming the dead engine
  (host, pid, last heartbeat) and what landed, and frees the apply lock their holder kept; an engine is dead when
  its heartbeat row is gone, its process (on this host) is gone, or its heartbeat has not changed for the
  staleness threshold as watched by the live engine (an injected clock here); of two engines, one ends it;
- the database going away in the middle of an apply: the apply stops at once, ``interrupted`` in the engine's memory
  with the outage named (what ``caxton apply`` reads), and is saved as such, its lock freed, once the server is back.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from caxton.cli.applies import finish
from caxton.cli.common import Output
from caxton.client.plan_apply import ApplyOutcome
from caxton.engine.core import Engine
from caxton.engine.replica.orphans import Orphans
from caxton.engine.state import applies as records
from caxton.engine.state.applies import ApplyRecord, ChangeResult
from caxton.engine.state.records import Source
from caxton.errors import CaxtonError
from caxton.spec import api
from tests.rollouts import agents
from tests.support.clock import ManualClock
from tests.support.poll import wait_for
from tests.support.postgres import RestartablePostgres, create_database, own_pg_server, pg_server_to_stop  # noqa: F401
from tests.support.replica_engines import pg_config, replica_engines  # noqa: F401

#: ``caxton_init`` busy-waits this long: the change that deploys it is still being made when the database stops.
SLOW_INIT_MS = 4000
SLOW_INIT = f"""
(module
  (import "caxton" "clock_ms" (func $clock (result i64)))
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_init") (local $end i64)
    (local.set $end (i64.add (call $clock) (i64.const {SLOW_INIT_MS})))
    (block $done (loop $again
      (br_if $done (i64.ge_s (call $clock) (local.get $end)))
      (br $again))))
  (func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 0)))
"""


def create(name: str, module: bytes | None = None) -> dict[str, Any]:
    return {"id": name, "action": "create", "strategy": "immediate", "spec": agents.spec(name, 1),
            "module": base64.b64encode(module or agents.module(1)).decode()}


def dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    return gone.pid


def foreign_apply(engine: Engine, engine_id: str, apply_id: str, holder: str) -> ApplyRecord:
    """An apply another engine (``engine_id``) runs, half made, holding the apply lock for ``holder``."""
    engine.lock.release(None, force=True)
    engine.lock.acquire(holder, "apply plan p", 600)
    record = ApplyRecord(apply_id, "plan-p", "running", holder, None, "2026-01-01T00:00:00.000000Z",
                         results=[ChangeResult("made", "create", "immediate", "done"),
                                  ChangeResult("making", "update", "immediate", "running"),
                                  ChangeResult("later", "create", "immediate")], engine_id=engine_id)
    records.insert(engine.store, record)
    return record


def register(engine: Engine, engine_id: str, host: str, pid: int, last_seen: float) -> None:
    with engine.store.unversioned() as conn:
        conn.execute("INSERT INTO engines (id, caxton_version, schema_version, host, pid, started_at, last_seen) "
                     "VALUES (?, '0.9.0', 8, ?, ?, '2026-01-01T00:00:00Z', ?)", (engine_id, host, pid, last_seen))


def stored(engine: Engine, apply_id: str) -> ApplyRecord:
    found = records.load(engine.store, apply_id)
    assert found is not None
    return found


def test_an_engine_ends_the_applies_of_engines_gone_or_killed_here_at_once(
        replica_engines: Callable[..., Engine]) -> None:  # noqa: F811
    live = replica_engines("live")
    host = socket.gethostname()
    register(live, "here:killed", host, dead_pid(), time.time())
    foreign_apply(live, "here:killed", "ap-killed", f"ci@{host} pid {os.getpid()}")  # a live holder: only the apply frees it
    wait_for(lambda: stored(live, "ap-killed").status == "interrupted", 20, "the killed engine's apply interrupted")
    record = stored(live, "ap-killed")
    assert record.reason is not None and f"on {host}" in record.reason and "its process no longer exists" in record.reason
    assert "last heartbeat" in record.reason and "landed: made" in record.reason and "not made: later" in record.reason
    assert "cut while being made (each landed whole or not at all): making" in record.reason
    assert [r.status for r in record.results] == ["done", "interrupted", "interrupted"]
    assert live.lock.current() is None  # its holder's lock is free at once, not after its ttl
    assert any(e.what == "apply_interrupted" and "ap-killed" in e.message for e in live.store.events(limit=50))

    foreign_apply(live, "gone:row", "ap-gone", "ci@elsewhere pid 7")  # no heartbeat row: its engine stopped
    wait_for(lambda: stored(live, "ap-gone").status == "interrupted", 20, "the stopped engine's apply interrupted")
    assert "it has no heartbeat row" in (stored(live, "ap-gone").reason or "")
    assert live.lock.current() is None


def test_an_engine_silent_for_the_threshold_as_watched_is_taken_for_dead_once(
        replica_engines: Callable[..., Engine]) -> None:  # noqa: F811
    first, second = replica_engines("first"), replica_engines("second")
    register(first, "far:42", "far-away-host", 42, 1000.0)  # another host: its pid cannot be checked
    foreign_apply(first, "far:42", "ap-far", "ci@far-away-host pid 9")
    clock = ManualClock()
    mine = Orphans(first.applies, first.store, "mine", stale_after=30.0, every=0.0, clock=clock.monotonic)
    assert mine.check() == []  # first look: it starts watching
    clock.advance(29.0)
    assert mine.check() == []
    with first.store.unversioned() as conn:  # a heartbeat: it is alive, the watch starts again
        conn.execute("UPDATE engines SET last_seen = 1010.0 WHERE id = 'far:42'")
    clock.advance(20.0)
    assert mine.check() == [] and stored(first, "ap-far").status == "running"
    clock.advance(30.0)
    assert mine.check() == ["ap-far"]
    record = stored(first, "ap-far")
    assert record.status == "interrupted" and record.reason is not None
    assert "caxton 0.9.0 on far-away-host, pid 42) stopped answering: no heartbeat for 30s" in record.reason
    assert "last heartbeat 1970-01-01T00:16:50Z" in record.reason
    theirs = Orphans(second.applies, second.store, "theirs", stale_after=0.0, every=0.0, clock=clock.monotonic)
    assert theirs.check() == []  # already ended: nobody ends it twice
    assert first.lock.current() is None


def test_a_database_outage_mid_apply_ends_it_interrupted_and_it_is_saved_once_the_server_is_back(
        pg_server_to_stop: RestartablePostgres, tmp_path: Path) -> None:  # noqa: F811
    engine = Engine(pg_config(create_database(pg_server_to_stop.url)), tmp_path / "data")
    engine.start()
    try:
        lease = engine.lock.acquire("ci@elsewhere pid 7", "apply plan p", 600)
        slow = bytes(wasmtime.wat2wasm(SLOW_INIT))
        submitted = engine.applies.submit({"plan_id": "plan-p", "engine_serial": engine.store.serial(),
                                           "lock_token": lease.token,
                                           "changes": [create("first"), create("slow", slow), create("last")]})
        apply_id = submitted["id"]

        def result(name: str) -> str:
            return next(r["status"] for r in engine.applies.get(apply_id)["results"] if r["id"] == name)

        wait_for(lambda: result("first") == "done" and result("slow") == "running", 20, "slow being made")
        pg_server_to_stop.stop()  # while slow's module initialises: its revision cannot be recorded
        wait_for(lambda: engine.applies.get(apply_id)["status"] in api.FINAL, 30, "the apply's end")
        view = engine.applies.get(apply_id)
        assert view["status"] == "interrupted", view
        assert view["reason"].startswith("the store became unavailable: the PostgreSQL store at ")
        assert "landed: first" in view["reason"] and "not made: last" in view["reason"]
        assert [r["status"] for r in view["results"]] == ["done", "interrupted", "interrupted"]
        with pytest.raises(CaxtonError) as shown:  # what `caxton apply` says, exit 1
            finish(ApplyOutcome.of(api.ApplyView.model_validate(view)), Output.json)
        assert f"apply {apply_id} interrupted: the store became unavailable" in shown.value.message
        assert "`caxton apply`" in (shown.value.hint or "")

        pg_server_to_stop.start()
        wait_for(lambda: stored(engine, apply_id).status == "interrupted", 30, "the apply saved once the server is back")
        assert stored(engine, apply_id).reason == view["reason"]
        assert engine.lock.current() is None  # the lock its client could not release is free
        assert {a.id for a in engine.snapshot().agents} == {"first"}  # slow's revision was never recorded
        wait_for(lambda: any(e.what == "apply_finished" and apply_id in e.message for e in engine.store.events(limit=50)),
                 20, "the apply_finished event")
    finally:
        if not pg_server_to_stop.running():
            pg_server_to_stop.start()
        engine.stop()


def test_an_apply_following_its_canary_ended_by_another_engine_stays_ended_and_its_rollout_goes_on(
        replica_engines: Callable[..., Engine]) -> None:  # noqa: F811
    runner, other = replica_engines("runner"), replica_engines("other")
    first = runner.applies.submit(submission(runner, create("echo")))
    wait_for(lambda: runner.applies.get(first["id"])["status"] == "succeeded", 20, "echo created")
    canary = {**create("echo"), "action": "update", "strategy": "canary",
              "spec": agents.spec("echo", 2, {"strategy": "canary", "steps": [50, 100], "interval": "1h"}),
              "module": base64.b64encode(agents.module(2)).decode()}
    apply_id = runner.applies.submit(submission(runner, canary))["id"]
    wait_for(lambda: runner.applies.get(apply_id)["status"] == "progressing", 20, "the canary under way")
    with runner.store.unversioned() as conn:  # as if the runner had stopped: its heartbeat row is gone
        conn.execute("DELETE FROM engines WHERE id = ?", (runner.applies.engine_id,))
    wait_for(lambda: stored(other, apply_id).status == "interrupted", 20, "the other engine ends the apply")
    reason = stored(other, apply_id).reason or ""
    assert "it has no heartbeat row" in reason
    assert "rollouts still in flight (they resume or roll back on their own): echo" in reason
    assert runner.rollouts.active("echo") is not None or other.rollouts.active("echo") is not None

    leader = runner if runner.replica is not None and runner.replica.leader else other
    leader.rollouts.abort("echo", Source(actor="test"))  # the rollout ends; the runner's apply thread hears of it
    wait_for(lambda: runner.applies.get(apply_id)["status"] == "interrupted", 20, "the runner takes the stored end")
    runner.applies.wait_idle(20)
    assert stored(runner, apply_id).status == "interrupted" and stored(runner, apply_id).reason == reason
    mentions = [e.what for e in runner.store.events(limit=100) if apply_id in e.message]
    assert mentions == ["apply_interrupted"], mentions  # ended once, by the other engine


def submission(engine: Engine, *changes: dict[str, Any]) -> dict[str, Any]:
    engine.lock.release(None, force=True)
    lease = engine.lock.acquire("ci@elsewhere pid 7", "apply", 600)
    return {"plan_id": "plan-p", "engine_serial": engine.store.serial(), "lock_token": lease.token,
            "changes": list(changes)}
