"""Agent log lines in the history database (table ``agent_logs``).

Each function runs inside a connection from ``HistoryDB.write``/``read``.
Buffering, flush cadence and retention are decided by
``caxton.engine.logs.AgentLogs``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from caxton.engine.state.db import Conn


def add(conn: Conn, lines: Iterable[tuple[str, dict[str, Any], float]]) -> None:
    """Append ``(agent, line, at_unix)`` lines; a line has ``at``, ``level``, ``revision``, ``message``."""
    conn.executemany(
        "INSERT INTO agent_logs (agent_id, at, at_unix, level, revision, message) VALUES (?, ?, ?, ?, ?, ?)",
        [(agent, line["at"], at, line["level"], line["revision"], line["message"]) for agent, line, at in lines],
    )


def trim(conn: Conn, agent: str, keep: int) -> None:
    """Delete all but the newest ``keep`` lines of ``agent``."""
    conn.execute(
        "DELETE FROM agent_logs WHERE agent_id = ? AND id <= (SELECT id FROM agent_logs "
        "WHERE agent_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (agent, agent, keep))


def prune(conn: Conn, before: float) -> None:
    """Delete lines written before ``before`` (unix time)."""
    conn.execute("DELETE FROM agent_logs WHERE at_unix < ?", (before,))


def delete(conn: Conn, agent: str) -> None:
    """Delete every line of ``agent``."""
    conn.execute("DELETE FROM agent_logs WHERE agent_id = ?", (agent,))


def tail(conn: Conn, agent: str, since: float, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` lines of ``agent`` written since ``since``, oldest first."""
    rows = conn.execute(
        "SELECT at, level, revision, message FROM agent_logs WHERE agent_id = ? AND at_unix >= ? "
        "ORDER BY id DESC LIMIT ?", (agent, since, limit),
    ).fetchall()
    return [{"at": r["at"], "level": r["level"], "revision": r["revision"], "message": r["message"]}
            for r in reversed(rows)]
