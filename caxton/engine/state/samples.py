"""Rollout samples in the store (table ``rollout_samples``): each engine's per-revision counts, for every engine.

One row is one engine's messages to one revision of one agent in one
second (``bucket``, unix time): requests, errors, shadow comparisons and a
latency histogram (JSON ``{bucket index: count}``, the buckets of
``caxton.engine.rollouts.histogram``; at most a few hundred keys). An engine
may write several rows for the same second (one per flush); readers sum
them. What is written when, and how the rollout analysis reads it back, is
``caxton.engine.rollouts.samples``. Each function runs inside a connection
from ``caxton.engine.state.history_db.HistoryDB`` (the rows are independent
of the state serial, like conversation turns).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from caxton.engine.rollouts.model import ACTIVE
from caxton.engine.state.db import Conn


class SampleRow(NamedTuple):
    agent_id: str
    revision: int
    bucket: int
    requests: int
    errors: int
    compared: int
    divergent: int
    latencies: dict[int, int]


def add(conn: Conn, engine_id: str, rows: Iterable[SampleRow]) -> None:
    conn.executemany(
        "INSERT INTO rollout_samples (engine_id, agent_id, revision, bucket, requests, errors, compared, divergent, "
        "latencies) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(engine_id, *row[:7], json.dumps(row.latencies, separators=(",", ":"))) for row in rows],
    )


def since(conn: Conn, agent_id: str, revision: int, bucket: int, *, besides: str) -> list[SampleRow]:
    """The rows of ``agent_id``'s ``revision`` from second ``bucket`` on, of every engine but ``besides``."""
    found = conn.execute(
        "SELECT agent_id, revision, bucket, requests, errors, compared, divergent, latencies FROM rollout_samples "
        "WHERE agent_id = ? AND revision = ? AND bucket >= ? AND engine_id <> ?",
        (agent_id, revision, bucket, besides),
    ).fetchall()
    return [SampleRow(r["agent_id"], int(r["revision"]), int(r["bucket"]), int(r["requests"]), int(r["errors"]),
                      int(r["compared"]), int(r["divergent"]),
                      {int(k): int(v) for k, v in json.loads(r["latencies"]).items()}) for r in found]


def prune(conn: Conn, before: int) -> int:
    """Delete the rows of seconds before ``before``; return how many."""
    return conn.execute("DELETE FROM rollout_samples WHERE bucket < ?", (before,)).rowcount


def rolling_out(conn: Conn) -> set[str]:
    """The agents with a rollout in flight (running or paused), whichever engine drives it."""
    marks = ",".join("?" for _ in ACTIVE)
    rows = conn.execute(f"SELECT DISTINCT agent_id FROM rollouts WHERE status IN ({marks})", tuple(ACTIVE)).fetchall()
    return {str(r["agent_id"]) for r in rows}
