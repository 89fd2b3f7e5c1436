"""Persistence of rollouts and conversation pins in the engine's store.

Rollout progress (step, weights, measurements, status) is saved without
bumping the state serial (``Store.unversioned``); the moments that change
what the engine serves (start, promotion, rollback) are events written in
a serial-bumping transaction. Pins (conversation -> revision) are written
in batches by the controller and read back when a rollout resumes after a
restart. Called by ``caxton.engine.rollouts.controller``.

Requests (``request``/``requests``/``done``): a ``caxton rollout promote|abort`` received by a
replica that does not drive the rollout (PostgreSQL, several engines) is recorded in the ``meta``
table under ``rollout_request:<rollout id>``; the leader acts on it and deletes it
(``caxton.engine.replica``). On a store several engines share, ``claim_pin`` places a
conversation one engine has not seen (``caxton.engine.sharing``, from the message path).
"""

from __future__ import annotations

import json
from typing import Any

from caxton.engine.rollouts.model import ACTIVE, Rollout
from caxton.engine.state.db import Conn
from caxton.engine.state.feed import REQUEST_PREFIX
from caxton.engine.state.records import Source, utcnow
from caxton.engine.state.store import Store

#: Finished rollouts kept per agent (older ones are deleted).
KEEP_PER_AGENT = 20


def save(store: Store, rollout: Rollout) -> None:
    rollout.updated_at = utcnow()
    with store.unversioned(notify=True) as conn:  # the other replicas mirror its route
        conn.execute(
            "INSERT INTO rollouts (id, agent_id, status, started_at, finished_at, body) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status=excluded.status, finished_at=excluded.finished_at, "
            "body=excluded.body",
            (rollout.id, rollout.agent_id, rollout.status, rollout.started_at, rollout.finished_at,
             json.dumps(rollout.to_dict(), default=str)),
        )


def event(store: Store, rollout: Rollout, what: str, message: str, *, revision: int | None = None,
          data: dict[str, Any] | None = None) -> None:
    """Record an event about ``rollout`` (bumps the serial: traffic changed)."""
    source = Source(actor=rollout.actor or "engine", plan_id=rollout.plan_id, git_commit=rollout.git_commit)
    with store.transaction() as tx:
        tx.event(what, source, agent_id=rollout.agent_id, revision=revision or rollout.candidate_revision,
                 message=message, data={"rollout": rollout.id, "strategy": rollout.strategy, **(data or {})})


def load(store: Store, rollout_id: str) -> Rollout | None:
    with store.reading() as conn:
        row = conn.execute("SELECT body FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
    return None if row is None else Rollout.from_dict(json.loads(row["body"]))


def active(store: Store) -> list[Rollout]:
    marks = ",".join("?" for _ in ACTIVE)
    with store.reading() as conn:
        rows = conn.execute(f"SELECT body FROM rollouts WHERE status IN ({marks}) ORDER BY started_at",
                            tuple(ACTIVE)).fetchall()
    return [Rollout.from_dict(json.loads(r["body"])) for r in rows]


def recent(store: Store, agent_id: str | None = None, limit: int = 20) -> list[Rollout]:
    """The newest rollouts (of one agent, or of all), newest first."""
    query, params = "SELECT body FROM rollouts", []
    if agent_id is not None:
        query += " WHERE agent_id = ?"
        params.append(agent_id)
    query += " ORDER BY started_at DESC LIMIT ?"
    with store.reading() as conn:
        rows = conn.execute(query, (*params, limit)).fetchall()
    return [Rollout.from_dict(json.loads(r["body"])) for r in rows]


def prune(store: Store, agent_id: str) -> None:
    with store.unversioned() as conn:
        conn.execute(
            "DELETE FROM rollouts WHERE agent_id = ? AND finished_at IS NOT NULL AND id NOT IN "
            "(SELECT id FROM rollouts WHERE agent_id = ? ORDER BY started_at DESC LIMIT ?)",
            (agent_id, agent_id, KEEP_PER_AGENT),
        )


# --- pins ----------------------------------------------------------------------------------
def save_pins(store: Store, agent_id: str, pins: list[tuple[str, int]]) -> None:
    if not pins:
        return
    with store.unversioned() as conn:
        conn.executemany("INSERT INTO rollout_pins (agent_id, conversation_id, revision) VALUES (?, ?, ?) "
                         "ON CONFLICT (agent_id, conversation_id) DO UPDATE SET revision = excluded.revision",
                         [(agent_id, conversation, revision) for conversation, revision in pins])


def claim_pin(conn: Conn, agent_id: str, conversation_id: str, revision: int) -> int:
    """The conversation's pinned revision; when it has none, ``revision``, pinned now (one statement)."""
    row = conn.execute("INSERT INTO rollout_pins (agent_id, conversation_id, revision) VALUES (?, ?, ?) "
                       "ON CONFLICT (agent_id, conversation_id) DO UPDATE SET revision = rollout_pins.revision "
                       "RETURNING revision", (agent_id, conversation_id, revision)).fetchone()
    return int(row["revision"])


def load_pins(store: Store, agent_id: str) -> dict[str, int]:
    with store.reading() as conn:
        rows = conn.execute("SELECT conversation_id, revision FROM rollout_pins WHERE agent_id = ?",
                            (agent_id,)).fetchall()
    return {r["conversation_id"]: int(r["revision"]) for r in rows}


def clear_pins(store: Store, agent_id: str) -> None:
    with store.unversioned() as conn:
        conn.execute("DELETE FROM rollout_pins WHERE agent_id = ?", (agent_id,))


# --- requests to the leader ------------------------------------------------------------------
def request(store: Store, rollout_id: str, action: str, actor: str | None, reason: str = "") -> None:
    """Ask the replica that drives rollout ``rollout_id`` to ``action`` it ("promote", "abort", "supersede")."""
    body = json.dumps({"action": action, "actor": actor, "reason": reason})
    with store.unversioned(notify=True) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     (REQUEST_PREFIX + rollout_id, body))


def requests(store: Store) -> dict[str, dict[str, Any]]:
    """The pending requests, by rollout id."""
    with store.reading() as conn:
        rows = conn.execute("SELECT key, value FROM meta WHERE key LIKE ?", (REQUEST_PREFIX + "%",)).fetchall()
    return {row["key"][len(REQUEST_PREFIX):]: json.loads(row["value"]) for row in rows}


def done(store: Store, rollout_id: str) -> None:
    """Forget the request about ``rollout_id`` (acted on, or its rollout is over)."""
    with store.unversioned() as conn:
        conn.execute("DELETE FROM meta WHERE key = ?", (REQUEST_PREFIX + rollout_id,))
