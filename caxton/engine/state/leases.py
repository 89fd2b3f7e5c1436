"""The apply lock's row in the engine's store (table ``apply_lock``, one row, id 1).

Reads and writes the lease inside a connection the caller holds
(``Store.unversioned``: taking the lock is not a change of the agents, so it
bumps no serial). Whether a stored lease is live (expiry, a dead holder) is
decided by ``caxton.engine.lease.ApplyLock``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from caxton.engine.state.db import Conn


@dataclass(frozen=True)
class Lease:
    token: str
    holder: str
    reason: str
    created_at: str
    expires_at: float

    def public(self, now: float | None = None) -> dict[str, Any]:
        """The lease as shown to anyone (without its token)."""
        data = asdict(self)
        del data["token"]
        data["expires_in"] = round(self.expires_at - (now if now is not None else time.time()), 1)
        data["expires_at"] = datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return data


def read(conn: Conn) -> Lease | None:
    """The stored lease, live or not, or None when there is none."""
    row = conn.execute("SELECT token, holder, reason, created_at, expires_at FROM apply_lock WHERE id = 1").fetchone()
    if row is None:
        return None
    return Lease(row["token"], row["holder"], row["reason"], row["created_at"], float(row["expires_at"]))


def write(conn: Conn, lease: Lease) -> None:
    """Store ``lease``, replacing any other."""
    conn.execute(
        "INSERT INTO apply_lock (id, token, holder, reason, created_at, expires_at) VALUES (1, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET token = excluded.token, holder = excluded.holder, "
        "reason = excluded.reason, created_at = excluded.created_at, expires_at = excluded.expires_at",
        (lease.token, lease.holder, lease.reason, lease.created_at, lease.expires_at),
    )


def extend(conn: Conn, expires_at: float) -> None:
    """Move the stored lease's expiry to ``expires_at``."""
    conn.execute("UPDATE apply_lock SET expires_at = ? WHERE id = 1", (expires_at,))


def delete(conn: Conn) -> None:
    """Remove the stored lease (the lock is free)."""
    conn.execute("DELETE FROM apply_lock")
