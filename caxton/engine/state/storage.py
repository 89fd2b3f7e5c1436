"""``caxton storage verify``: an offline check of a data directory's databases.

Checks, without changing anything: ``PRAGMA integrity_check`` of the store and
of the memory database; every blob's bytes against its sha256 and size (the
specs and WASM modules of every kept revision); every revision's spec and
module blobs present; every agent's current revision present; and lists
orphans (blobs no revision uses). Reading is safe while an engine serves
(WAL readers never block its writer), so the data directory is not locked.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from caxton.engine.state.store import DB_NAME
from caxton.errors import NotFound


def verify(data_dir: Path, memory_path: str = "memory.db") -> dict[str, Any]:
    """The findings for ``data_dir``: ``ok`` is true when there are no problems (orphans are not problems)."""
    store = data_dir / DB_NAME
    if not store.is_file():
        raise NotFound(f"no engine store ({DB_NAME}) in {data_dir}", hint="give the engine's --data-dir")
    problems: list[str] = []
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        problems += _integrity(conn, DB_NAME)
        blobs, bad = _blobs(conn)
        problems += bad
        problems += _references(conn, blobs)
        orphans = sorted(set(blobs) - _used(conn))
        counts = {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # noqa: S608
                  for t in ("agents", "revisions", "blobs")}
    finally:
        conn.close()
    memory = data_dir / memory_path
    if memory.is_file():
        conn = sqlite3.connect(f"file:{memory}?mode=ro", uri=True)
        try:
            problems += _integrity(conn, memory.name)
        finally:
            conn.close()
    return {"data_dir": str(data_dir), "ok": not problems, "problems": problems, "orphans": orphans,
            "counts": counts, "memory_checked": memory.is_file()}


def _integrity(conn: sqlite3.Connection, name: str) -> list[str]:
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        return [f"{name}: not a readable SQLite database: {error}"]
    return [] if rows == ["ok"] else [f"{name}: integrity check: {row}" for row in rows[:20]]


def _blobs(conn: sqlite3.Connection) -> tuple[dict[str, str], list[str]]:
    kinds: dict[str, str] = {}
    bad: list[str] = []
    for sha, kind, size, data in conn.execute("SELECT sha256, kind, size, data FROM blobs"):
        kinds[sha] = kind
        data = bytes(data)
        if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            bad.append(f"{kind} blob {sha[:12]}...: its bytes do not match its sha256 or size")
    return kinds, bad


def _references(conn: sqlite3.Connection, blobs: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for agent, number, spec, module in conn.execute(
            "SELECT agent_id, number, spec_sha256, module_sha256 FROM revisions ORDER BY agent_id, number"):
        if spec not in blobs:
            problems.append(f"revision {number} of {agent}: spec blob {spec[:12]}... is missing")
        if module is not None and module not in blobs:
            problems.append(f"revision {number} of {agent}: module blob {module[:12]}... is missing")
    for agent, number in conn.execute(
            "SELECT a.id, a.revision FROM agents a LEFT JOIN revisions r ON r.agent_id = a.id "
            "AND r.number = a.revision WHERE a.revision IS NOT NULL AND r.number IS NULL "
            "AND a.state NOT IN ('Failed')"):
        problems.append(f"agent {agent}: its revision {number} is missing")
    return problems


def _used(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT spec_sha256 FROM revisions UNION SELECT module_sha256 FROM revisions "
                        "WHERE module_sha256 IS NOT NULL")
    return {str(row[0]) for row in rows}
