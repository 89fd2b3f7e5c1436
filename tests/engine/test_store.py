"""The store on both backends (``store_url``: SQLite, PostgreSQL): migrations recorded, one serial bump per change,
append-only events, pruning; and what differs with several connections: the serial and the apply lease."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from caxton.engine.lease import ApplyLock
from caxton.engine.rollouts.model import Rollout
from caxton.engine.state import applies
from caxton.engine.state import rollouts as records
from caxton.engine.state.migrations import MIGRATIONS
from caxton.engine.state.migrations_pg import MIGRATIONS as PG_MIGRATIONS
from caxton.engine.state.records import Source, new_agent_row
from caxton.engine.state.store import Store, StoreError
from caxton.errors import IllegalTransition, LockHeld

SRC = Source(actor="test", plan_id="plan-1", git_commit="abc123")


@pytest.fixture
def open_store(tmp_path: Path, store_url: str | None) -> Iterator[Callable[[], Store]]:
    """Open a store on the backend of ``store_url`` (several: several engines' connections); all closed after."""
    opened: list[Store] = []

    def make() -> Store:
        opened.append(Store.open(tmp_path, store_url))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def _add(store: Store, agent: str, spec: dict[str, object]) -> int:
    with store.transaction() as tx:
        sha = tx.put_spec(spec)
        return tx.add_revision(agent, version="1.0.0", spec_sha256=sha, module_sha256=None,
                               spec_digest="sha256:x", source=SRC)


def test_open_records_migrations(open_store: Callable[[], Store], store_url: str | None) -> None:
    store = open_store()
    assert store.migrations() == [name for name, _ in MIGRATIONS] and store.migrations()[0] == "0001_initial"
    assert store.migrate() == []  # nothing pending on a second run
    store.close()
    again = open_store()
    assert again.migrations() == [name for name, _ in MIGRATIONS]
    assert again.dialect == ("sqlite" if store_url is None else "postgres")


def test_both_backends_have_the_same_migrations() -> None:
    assert [name for name, _ in PG_MIGRATIONS] == [name for name, _ in MIGRATIONS]


def test_the_sqlite_store_is_a_wal_database_in_the_data_directory(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    mode = sqlite3.connect(tmp_path / "engine.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal" and store.path == tmp_path / "engine.db" and store.location == str(store.path)
    store.close()


def test_the_postgres_store_keeps_nothing_in_the_data_directory(tmp_path: Path, pg_url: str) -> None:
    store = Store.open(tmp_path / "data", pg_url)
    assert store.path is None and not (tmp_path / "data").exists()
    store.close()


def test_serial_increases_once_per_changing_transaction(open_store: Callable[[], Store]) -> None:
    store = open_store()
    assert store.serial() == 0
    with store.transaction() as tx:
        row = new_agent_row("a", "A", "config", SRC)
        tx.save_agent(row)
        row = tx.transition(row, "Validated", SRC)
        row = tx.transition(row, "Registered", SRC)
    assert store.serial() == 1
    with store.transaction():
        pass  # reads only: no bump
    assert store.serial() == 1
    events = store.events()
    assert [(e.from_state, e.to_state) for e in events] == [("Unvalidated", "Validated"), ("Validated", "Registered")]
    assert {e.serial for e in events} == {1} and events[0].actor == "test" and events[0].plan_id == "plan-1"


def test_a_failed_transaction_changes_nothing(open_store: Callable[[], Store]) -> None:
    store = open_store()
    with pytest.raises(IllegalTransition), store.transaction() as tx:
        row = new_agent_row("a", "A", "config", SRC)
        tx.save_agent(row)
        tx.transition(row, "Active", SRC)  # Unvalidated -> Active is illegal
    assert store.agents() == [] and store.events() == [] and store.serial() == 0


def test_events_are_append_only(open_store: Callable[[], Store]) -> None:
    store = open_store()
    with store.transaction() as tx:
        tx.event("note", SRC, message="hello")
    for statement in ("UPDATE events SET message = 'x'", "DELETE FROM events"):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"), \
                store.unversioned() as conn:
            conn.execute(statement)
    assert [e.message for e in store.events()] == ["hello"]


def test_revisions_are_numbered_pruned_and_blobs_content_addressed(open_store: Callable[[], Store]) -> None:
    store = open_store()
    numbers = [_add(store, "a", {"n": i % 2}) for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    assert len({r.spec_sha256 for r in store.revisions("a")}) == 2  # same spec, same blob
    with store.transaction() as tx:
        pruned = tx.prune_revisions("a", 2, protect={1})
    assert pruned == [3, 2]
    assert [r.number for r in store.revisions("a")] == [1, 4, 5]
    assert store.spec_of(store.revision("a", 1)) == {"n": 0}


def test_unused_blobs_are_deleted_with_their_last_revision(open_store: Callable[[], Store]) -> None:
    store = open_store()
    first = _add(store, "a", {"old": True})
    _add(store, "a", {"new": True})
    sha = store.revision("a", first).spec_sha256
    with store.transaction() as tx:
        tx.prune_revisions("a", 1, protect=set())
    assert store.blob(sha) is None


def test_snapshot_rows_reads_agents_with_their_specs(open_store: Callable[[], Store]) -> None:
    store = open_store()
    number = _add(store, "a", {"name": "A"})
    with store.transaction() as tx:
        from dataclasses import replace

        tx.save_agent(replace(new_agent_row("a", "A", "config", SRC), revision=number))
    serial, rows = store.snapshot_rows()
    assert serial == 2 and rows[0][0].id == "a" and rows[0][2] == {"name": "A"}


def test_concurrent_serial_bumps_from_two_stores_stay_unique_and_monotonic(
        open_store: Callable[[], Store]) -> None:
    """Two engines' connections on one database: every change gets its own serial, in commit order."""
    stores = [open_store() for _ in range(2)]
    seen: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def bump(k: int) -> None:
        try:
            for n in range(25):
                with stores[k].transaction() as tx:
                    tx.event("note", SRC, message=f"{k}-{n}")
                    seen[k].append(tx.serial)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    workers = [threading.Thread(target=bump, args=(k,)) for k in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    assert all(a < b for a, b in zip(seen[0], seen[0][1:], strict=False))  # each connection: increasing
    assert all(a < b for a, b in zip(seen[1], seen[1][1:], strict=False))
    assert sorted(seen[0] + seen[1]) == list(range(1, 51))  # together: unique, no gap
    events = stores[0].events(limit=100)
    assert [e.serial for e in events] == list(range(1, 51))  # committed in serial order
    assert stores[1].serial() == 50


def test_the_apply_lease_of_one_store_refuses_another_until_it_expires(open_store: Callable[[], Store]) -> None:
    now = [1000.0]
    first, second = open_store(), open_store()
    mine, theirs = ApplyLock(first, clock=lambda: now[0]), ApplyLock(second, clock=lambda: now[0])
    lease = mine.acquire("ci-1", "deploy", ttl=30)
    with pytest.raises(LockHeld, match="held by ci-1"):
        theirs.acquire("ci-2", "deploy", ttl=30)
    assert theirs.current() == lease
    now[0] += 29
    with pytest.raises(LockHeld):
        theirs.acquire("ci-2", "deploy", ttl=30)
    now[0] += 2  # past the expiry: free for the other
    taken = theirs.acquire("ci-2", "deploy", ttl=30)
    assert mine.current() == taken and taken.holder == "ci-2"


def test_only_one_of_racing_stores_takes_the_apply_lease(open_store: Callable[[], Store]) -> None:
    stores = [open_store() for _ in range(4)]
    start = threading.Barrier(len(stores))
    won: list[str] = []
    refused: list[str] = []

    def take(k: int) -> None:
        start.wait()
        try:
            ApplyLock(stores[k]).acquire(f"holder-{k}", "race", ttl=60)
            won.append(f"holder-{k}")
        except LockHeld:
            refused.append(f"holder-{k}")

    workers = [threading.Thread(target=take, args=(k,)) for k in range(len(stores))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert len(won) == 1 and len(refused) == len(stores) - 1
    lease = ApplyLock(stores[0]).current()
    assert lease is not None and lease.holder == won[0]


# --- the records saved outside the serial: applies, rollouts and their pins ----------------------------
def _rollout(rollout_id: str, agent: str, status: str, started_at: str) -> Rollout:
    return Rollout(id=rollout_id, agent_id=agent, name="canary", strategy="canary", status=status,
                   stable_revision=1, candidate_revision=2, candidate_version="2.0.0", spec={"steps": []},
                   started_at=started_at, updated_at=started_at, weights={"1": 90, "2": 10},
                   finished_at=None if status in ("running", "paused") else started_at)


def test_apply_records_are_saved_updated_once_final_and_listed_newest_first(open_store: Callable[[], Store]) -> None:
    store = open_store()
    serial = store.serial()
    for n in range(3):
        applies.insert(store, applies.ApplyRecord(f"ap-{n}", f"plan-{n}", "running", "ci", "abc", f"t{n}",
                                                  results=[applies.ChangeResult(f"agent-{n}", "create", "immediate")],
                                                  engine_id=f"engine-{n}"))
    record = applies.load(store, "ap-1")
    assert record is not None and record.results[0].id == "agent-1" and record.status == "running"
    assert record.engine_id == "engine-1" and record.reason is None
    record.status, record.finished_at = "succeeded", "t9"
    record.results[0].status = "done"
    assert applies.update(store, record)
    assert [r.id for r in applies.unfinished(store)] == ["ap-0", "ap-2"]  # oldest first
    for unfinished in applies.unfinished(store):
        unfinished.status, unfinished.reason = "interrupted", "its engine died"
        assert applies.update(store, unfinished)
    record.status = "failed"
    assert not applies.update(store, record)  # a final record is never written again
    assert [(r.id, r.status) for r in applies.recent(store, 10)] == [
        ("ap-2", "interrupted"), ("ap-1", "succeeded"), ("ap-0", "interrupted")]  # insertion order, newest first
    assert applies.load(store, "ap-1").results[0].status == "done"  # type: ignore[union-attr]
    assert applies.load(store, "ap-2").reason == "its engine died"  # type: ignore[union-attr]
    assert applies.load(store, "nope") is None and store.serial() == serial  # outside the serial


def test_rollouts_and_pins_are_saved_found_and_pruned(open_store: Callable[[], Store]) -> None:
    store = open_store()
    records.save(store, _rollout("r1", "a", "running", "2026-01-01T00:00:01Z"))
    records.save(store, _rollout("r2", "b", "succeeded", "2026-01-01T00:00:02Z"))
    changed = _rollout("r1", "a", "paused", "2026-01-01T00:00:01Z")
    changed.step = 2
    records.save(store, changed)  # an upsert
    assert records.load(store, "r1").step == 2  # type: ignore[union-attr]
    assert [r.id for r in records.active(store)] == ["r1"]
    assert [r.id for r in records.recent(store)] == ["r2", "r1"] and [r.id for r in records.recent(store, "b")] == ["r2"]
    records.event(store, changed, "rollout_paused", "paused at step 2")
    assert store.events()[-1].what == "rollout_paused" and store.events()[-1].data["rollout"] == "r1"
    for n in range(records.KEEP_PER_AGENT + 3):
        records.save(store, _rollout(f"old-{n:02d}", "b", "succeeded", f"2025-01-01T00:00:{n:02d}Z"))
    records.prune(store, "b")
    kept = records.recent(store, "b", limit=100)
    assert len(kept) == records.KEEP_PER_AGENT and kept[0].id == "r2"  # the newest kept

    records.save_pins(store, "a", [("c1", 1), ("c2", 2)])
    records.save_pins(store, "a", [("c1", 2)])  # a pin moves
    assert records.load_pins(store, "a") == {"c1": 2, "c2": 2} and records.load_pins(store, "b") == {}
    records.clear_pins(store, "a")
    assert records.load_pins(store, "a") == {}


def test_an_unusable_data_directory_is_a_store_error_saying_what_to_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    with pytest.raises(StoreError, match="cannot open the engine database in") as refused:
        Store.open(blocker)
    assert "--data-dir" in (refused.value.hint or "")
