"""Conversation turns in the history database (table ``conversation_turns``).

Each function runs inside a connection from ``HistoryDB.write``/``read``, so
a caller groups several into one transaction. What is written when (trim and
prune cadence, the open conversations kept in memory) is decided by
``caxton.engine.serving.conversations.DurableConversationStore``.
"""

from __future__ import annotations

from collections.abc import Iterable

from caxton.engine.state.db import Conn


def add(conn: Conn, agent: str, conversation_id: str, turns: Iterable[tuple[str, str]],
        at: float) -> None:
    """Append ``(role, content)`` turns to a conversation."""
    conn.executemany(
        "INSERT INTO conversation_turns (agent_id, conversation_id, role, content, at) VALUES (?, ?, ?, ?, ?)",
        [(agent, conversation_id, role, content, at) for role, content in turns],
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
         limit: int) -> list[tuple[str, str]]:
    """The newest ``limit`` turns written since ``since``, oldest first, as ``(role, content)``."""
    rows = conn.execute(
        "SELECT role, content FROM (SELECT id, role, content FROM conversation_turns "
        "WHERE agent_id = ? AND conversation_id = ? AND at >= ? ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
        (agent, conversation_id, since, limit),
    ).fetchall()
    return [(row["role"], row["content"]) for row in rows]
