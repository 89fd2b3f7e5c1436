"""One state change of the engine's store: the writes inside ``Store.transaction()``.

A ``Transaction`` writes blobs (content-addressed by sha256), revisions, agents
and events on the store's write connection, checks each transition against the
agent's state machine (``caxton.engine.states``), prunes old revisions, and
marks itself dirty so the store bumps the serial once at commit. Made only by
``caxton.engine.state.store.Store.transaction``; used by the operations, the
rollouts and the replicas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from caxton.engine import states
from caxton.engine.state.db import Conn, Cursor, Database
from caxton.engine.state.records import AgentRow, EventRow, Source, utcnow
from caxton.spec.digest import canonical_json, sha256_hex


@dataclass
class Transaction:
    """Writes inside one ``Store.transaction()``; ``serial`` is the serial it commits."""

    conn: Conn
    serial: int
    db: Database
    dirty: bool = False
    events: list[int] = field(default_factory=list)
    #: The events written, as ``Store.committed`` is given them.
    rows: list[EventRow] = field(default_factory=list)

    def _write(self, sql: str, params: tuple[Any, ...] | list[Any]) -> Cursor:
        self.dirty = True
        return self.conn.execute(sql, params)

    def put_blob(self, data: bytes, kind: str) -> str:
        sha = sha256_hex(data)
        self._write(
            "INSERT INTO blobs (sha256, kind, size, data) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
            (sha, kind, len(data), data),
        )
        return sha

    def put_spec(self, spec: dict[str, Any]) -> str:
        return self.put_blob(canonical_json(spec), "spec")

    def add_revision(
        self, agent_id: str, *, version: str, spec_sha256: str, module_sha256: str | None,
        spec_digest: str, source: Source, number: int | None = None,
    ) -> int:
        if number is None:
            row = self.conn.execute("SELECT MAX(number) AS n FROM revisions WHERE agent_id = ?", (agent_id,)).fetchone()
            number = int(row["n"] or 0) + 1
        self._write(
            "INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (agent_id, number, version, spec_sha256, module_sha256, spec_digest, utcnow(),
             source.actor, source.plan_id, source.git_commit),
        )
        return number

    def save_agent(self, row: AgentRow) -> None:
        self._write(
            "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "name=excluded.name, kind=excluded.kind, state=excluded.state, revision=excluded.revision, "
            "applied_spec_digest=excluded.applied_spec_digest, traffic=excluded.traffic, "
            "git_commit=excluded.git_commit, plan_id=excluded.plan_id, updated_at=excluded.updated_at",
            (row.id, row.name, row.kind, row.state, row.revision, row.applied_spec_digest,
             json.dumps(row.traffic, sort_keys=True), row.git_commit, row.plan_id, row.created_at, row.updated_at),
        )

    def delete_agent(self, agent_id: str) -> None:
        self._write("DELETE FROM agents WHERE id = ?", (agent_id,))

    def transition(
        self, agent: AgentRow, target: str, source: Source, *, revision: int | None = None, message: str = "",
    ) -> AgentRow:
        """Move ``agent`` to ``target`` (checked against its state machine) and record the event."""
        states.check(agent.kind, agent.state, target)
        moved = _replace(agent, state=target, updated_at=utcnow())
        self.save_agent(moved)
        self.event(
            "transition", source, agent_id=agent.id, from_state=agent.state, to_state=target,
            revision=revision if revision is not None else agent.revision,
            message=message or f"{agent.state} -> {target}",
        )
        return moved

    def event(
        self, what: str, source: Source, *, agent_id: str | None = None, from_state: str | None = None,
        to_state: str | None = None, revision: int | None = None, message: str = "", data: Any = None,
    ) -> int:
        self.dirty = True
        at, text = utcnow(), None if data is None else json.dumps(data, default=str)
        event_id = self.db.insert_id(
            self.conn,
            "INSERT INTO events (at, serial, agent_id, what, from_state, to_state, revision, message, "
            "actor, plan_id, git_commit, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at, self.serial, agent_id, what, from_state, to_state, revision, message,
             source.actor, source.plan_id, source.git_commit, text),
        )
        self.events.append(event_id)
        self.rows.append(EventRow(event_id, at, self.serial, agent_id, what, from_state, to_state, revision, message,
                                  source.actor, source.plan_id, source.git_commit,
                                  None if text is None else json.loads(text)))
        return event_id

    def prune_revisions(self, agent_id: str, keep: int, *, protect: set[int]) -> list[int]:
        """Delete all but the newest ``keep`` revisions (never those in ``protect``) and unused blobs."""
        rows = self.conn.execute(
            "SELECT number FROM revisions WHERE agent_id = ? ORDER BY number DESC", (agent_id,)
        ).fetchall()
        doomed = [int(r["number"]) for r in rows[keep:] if int(r["number"]) not in protect]
        for number in doomed:
            self._write("DELETE FROM revisions WHERE agent_id = ? AND number = ?", (agent_id, number))
        if doomed:
            self._write(
                "DELETE FROM blobs WHERE sha256 NOT IN (SELECT spec_sha256 FROM revisions) "
                "AND sha256 NOT IN (SELECT module_sha256 FROM revisions WHERE module_sha256 IS NOT NULL)",
                (),
            )
        return doomed


def _replace(agent: AgentRow, **changes: Any) -> AgentRow:
    return replace(agent, **changes)
