"""Apply records in the engine's store (table ``applies``).

An apply's status and its changes' results are saved outside the state serial
(``Store.unversioned``): an apply reports progress, each agent's own change is
durable by itself. Progress lines are kept in memory only. Called by
``caxton.engine.applies.ApplyRunner``, which decides what to write and when.
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
    persisted_at: float = 0.0

    def view(self, after: int = 0) -> dict[str, Any]:
        return {**self.summary(), "log": [line for line in self.log if line["seq"] > after]}

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "plan_id": self.plan_id, "status": self.status, "holder": self.holder,
            "git_commit": self.git_commit, "submitted_at": self.submitted_at, "finished_at": self.finished_at,
            "results": [asdict(r) for r in self.results],
        }


def interrupt(store: Store, unfinished: tuple[str, ...]) -> list[ApplyRecord]:
    """Mark every apply whose status is in ``unfinished`` as ``interrupted``; return them as they were."""
    marks = ",".join("?" * len(unfinished))
    with store.unversioned() as conn:
        rows = conn.execute(f"SELECT * FROM applies WHERE status IN ({marks})", unfinished).fetchall()  # noqa: S608
        conn.execute(f"UPDATE applies SET status = 'interrupted', finished_at = ? WHERE status IN ({marks})",  # noqa: S608
                     (utcnow(), *unfinished))
    return [_record(row) for row in rows]


def insert(store: Store, record: ApplyRecord) -> None:
    """Save a new apply."""
    with store.unversioned() as conn:
        conn.execute(
            "INSERT INTO applies (id, plan_id, status, holder, git_commit, submitted_at, results) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.plan_id, record.status, record.holder, record.git_commit,
             record.submitted_at, _results(record)),
        )


def update(store: Store, record: ApplyRecord) -> None:
    """Save an apply's status, end and results."""
    with store.unversioned() as conn:
        conn.execute("UPDATE applies SET status = ?, finished_at = ?, results = ? WHERE id = ?",
                     (record.status, record.finished_at, _results(record), record.id))


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
                       row["submitted_at"], row["finished_at"], results, [])
