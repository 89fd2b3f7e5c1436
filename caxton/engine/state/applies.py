"""Apply records in the engine's store (table ``applies``).

An apply's status and its changes' results are saved outside the state serial
(``Store.unversioned``): an apply reports progress, each agent's own change is
durable by itself. Progress lines are kept in memory only. Called by
``caxton.engine.applies.ApplyRunner``, which decides what to write and when.
Each record names the engine running it (``engine_id``, its heartbeat row in
``engines``): a live engine finishes the unfinished applies of a dead one
(``caxton.engine.replica.orphans``). Once final, a record is never written
again: ``update`` changes only unfinished ones, so of two
engines finishing one apply, exactly one does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from caxton.engine.state.records import utcnow
from caxton.engine.state.store import Store


@dataclass
class ChangeResult:
    id: str
    action: str
    strategy: str
    #: pending, running, paused (its rollout), done, unchanged, failed, rolled_back, superseded, interrupted
    status: str = "pending"
    message: str = ""
    revision: int | None = None
    duration_ms: float | None = None


@dataclass
class ApplyRecord:
    id: str
    plan_id: str
    status: str
    holder: str | None
    git_commit: str | None
    submitted_at: str
    finished_at: str | None = None
    results: list[ChangeResult] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    #: The engine running it (``engines.id``); None in records of engines before migration 0008.
    engine_id: str | None = None
    #: Why it ended early (interrupted, or failed by an outage), None otherwise.
    reason: str | None = None
    persisted_at: float = 0.0

    def view(self, after: int = 0) -> dict[str, Any]:
        return {**self.summary(), "log": [line for line in self.log if line["seq"] > after]}

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "plan_id": self.plan_id, "status": self.status, "holder": self.holder,
            "git_commit": self.git_commit, "submitted_at": self.submitted_at, "finished_at": self.finished_at,
            "engine": self.engine_id, "reason": self.reason, "results": [asdict(r) for r in self.results],
        }


#: The statuses of an apply still making its changes or following its rollouts.
UNFINISHED = ("running", "progressing")


def unfinished(store: Store) -> list[ApplyRecord]:
    """The applies still running or progressing, oldest first."""
    with store.reading() as conn:
        rows = conn.execute("SELECT * FROM applies WHERE status IN (?, ?) ORDER BY rowid", UNFINISHED).fetchall()
    return [_record(row) for row in rows]


def update(store: Store, record: ApplyRecord) -> bool:
    """Save an apply's status, end, reason and results if its stored record is still unfinished; False
    (nothing written) when it is final already (another engine marked it interrupted)."""
    with store.unversioned() as conn:
        cursor = conn.execute(
            "UPDATE applies SET status = ?, finished_at = ?, reason = ?, results = ? WHERE id = ? "
            "AND status IN (?, ?)",
            (record.status, record.finished_at, record.reason, _results(record), record.id, *UNFINISHED))
        return cursor.rowcount > 0


def insert(store: Store, record: ApplyRecord) -> None:
    """Save a new apply."""
    with store.unversioned() as conn:
        conn.execute(
            "INSERT INTO applies (id, plan_id, status, holder, git_commit, submitted_at, results, engine_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.plan_id, record.status, record.holder, record.git_commit,
             record.submitted_at, _results(record), record.engine_id),
        )


def load(store: Store, apply_id: str) -> ApplyRecord | None:
    """The apply ``apply_id`` as saved, or None."""
    with store.unversioned() as conn:
        row = conn.execute("SELECT * FROM applies WHERE id = ?", (apply_id,)).fetchone()
    return None if row is None else _record(row)


def recent(store: Store, limit: int) -> list[ApplyRecord]:
    """The newest ``limit`` applies, newest first."""
    with store.reading() as conn:
        rows = conn.execute("SELECT * FROM applies ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall()
    return [_record(row) for row in rows]


def _results(record: ApplyRecord) -> str:
    return json.dumps([asdict(r) for r in record.results])


def _record(row: Any) -> ApplyRecord:
    """An apply record as persisted (its progress lines are kept in memory only)."""
    results = [ChangeResult(**r) for r in json.loads(row["results"])]
    return ApplyRecord(row["id"], row["plan_id"], row["status"], row["holder"], row["git_commit"],
                       row["submitted_at"], row["finished_at"], results, [], row["engine_id"], row["reason"])
