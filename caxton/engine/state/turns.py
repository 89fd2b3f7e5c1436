"""Conversation turns in the history database (table ``conversation_turns``).

Each function runs inside a connection from ``HistoryDB.write``/``read``, so
a caller groups several into one transaction. What is written when (trim and
prune cadence, the open conversations kept in memory) is decided by
``caxton.engine.serving.conversations.DurableConversationStore``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from caxton.engine.state.db import Conn

class StoredTurn(NamedTuple):
    """One row: ``tool_calls`` (JSON text) on an assistant turn asking for tools, ``tool_call_id`` on a tool turn."""

    role: str
    content: str
    tool_calls: str | None = None
    tool_call_id: str | None = None


def add(conn: Conn, agent: str, conversation_id: str, turns: Iterable[StoredTurn], at: float) -> None:
    """Append turns to a conversation."""
    conn.executemany(
        "INSERT INTO conversation_turns (agent_id, conversation_id, role, content, tool_calls, tool_call_id, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(agent, conversation_id, *turn, at) for turn in turns],
    )


def trim(conn: Conn, agent: str, conversation_id: str, keep: int) -> None:
    """Delete all but the newest ``keep`` turns of a conversation."""
    conn.execute(
        "DELETE FROM conversation_turns WHERE agent_id = ? AND conversation_id = ? AND id <= "
        "(SELECT id FROM conversation_turns WHERE agent_id = ? AND conversation_id = ? "
        "ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (agent, conversation_id, agent, conversation_id, keep),
    )


def prune(conn: Conn, before: float) -> int:
    """Delete turns written before ``before`` (wall time); return how many."""
    return conn.execute("DELETE FROM conversation_turns WHERE at < ?", (before,)).rowcount


def delete(conn: Conn, agent: str, conversation_id: str | None = None) -> None:
    """Delete one conversation's turns, or (without ``conversation_id``) all of an agent's."""
    if conversation_id is None:
        conn.execute("DELETE FROM conversation_turns WHERE agent_id = ?", (agent,))
    else:
        conn.execute("DELETE FROM conversation_turns WHERE agent_id = ? AND conversation_id = ?",
                     (agent, conversation_id))


def last(conn: Conn, agent: str, conversation_id: str, since: float,
         limit: int) -> list[StoredTurn]:
    """The newest ``limit`` turns written since ``since``, oldest first."""
    rows = conn.execute(
        "SELECT role, content, tool_calls, tool_call_id FROM (SELECT id, role, content, tool_calls, tool_call_id "
        "FROM conversation_turns WHERE agent_id = ? AND conversation_id = ? AND at >= ? ORDER BY id DESC LIMIT ?) "
        "AS newest ORDER BY id",
        (agent, conversation_id, since, limit),
    ).fetchall()
    return [StoredTurn(row["role"], row["content"], row["tool_calls"], row["tool_call_id"]) for row in rows]
