"""The SQLite store: migrations recorded, one serial bump per change, append-only events, pruning."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from caxton.engine.state.migrations import MIGRATIONS
from caxton.engine.state.store import Source, Store, new_agent_row
from caxton.errors import IllegalTransition

SRC = Source(actor="test", plan_id="plan-1", git_commit="abc123")


def _add(store: Store, agent: str, spec: dict[str, object]) -> int:
    with store.transaction() as tx:
        sha = tx.put_spec(spec)
        return tx.add_revision(agent, version="1.0.0", spec_sha256=sha, module_sha256=None,
                               spec_digest="sha256:x", source=SRC)


def test_open_creates_wal_database_and_records_migrations(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    assert store.migrations() == [name for name, _ in MIGRATIONS] and store.migrations()[0] == "0001_initial"
    mode = sqlite3.connect(tmp_path / "engine.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.migrate() == []  # nothing pending on a second run
    store.close()
    assert Store.open(tmp_path).migrations() == [name for name, _ in MIGRATIONS]


def test_serial_increases_once_per_changing_transaction(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
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


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with pytest.raises(IllegalTransition), store.transaction() as tx:
        row = new_agent_row("a", "A", "config", SRC)
        tx.save_agent(row)
        tx.transition(row, "Active", SRC)  # Unvalidated -> Active is illegal
    assert store.agents() == [] and store.events() == [] and store.serial() == 0


def test_events_are_append_only(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.transaction() as tx:
        tx.event("note", SRC, message="hello")
    conn = sqlite3.connect(tmp_path / "engine.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET message = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")


def test_revisions_are_numbered_pruned_and_blobs_content_addressed(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    numbers = [_add(store, "a", {"n": i % 2}) for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    assert len({r.spec_sha256 for r in store.revisions("a")}) == 2  # same spec, same blob
    with store.transaction() as tx:
        pruned = tx.prune_revisions("a", 2, protect={1})
    assert pruned == [3, 2]
    assert [r.number for r in store.revisions("a")] == [1, 4, 5]
    assert store.spec_of(store.revision("a", 1)) == {"n": 0}


def test_unused_blobs_are_deleted_with_their_last_revision(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    first = _add(store, "a", {"old": True})
    _add(store, "a", {"new": True})
    sha = store.revision("a", first).spec_sha256
    with store.transaction() as tx:
        tx.prune_revisions("a", 1, protect=set())
    assert store.blob(sha) is None


def test_snapshot_rows_reads_agents_with_their_specs(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    number = _add(store, "a", {"name": "A"})
    with store.transaction() as tx:
        from dataclasses import replace

        tx.save_agent(replace(new_agent_row("a", "A", "config", SRC), revision=number))
    serial, rows = store.snapshot_rows()
    assert serial == 2 and rows[0][0].id == "a" and rows[0][2] == {"name": "A"}
