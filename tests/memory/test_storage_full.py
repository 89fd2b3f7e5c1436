"""A full disk answers 507 storage_full naming the cause (not a 500 "bug in the engine") and degrades health.

The disk is filled for real: ``PRAGMA max_page_count`` caps the served memory
database at its current size, so the next write that needs a page gets
SQLite's own SQLITE_FULL, exactly as on a full volume.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import CliResult
from tests.memory.test_api_cli import Served, serve  # noqa: F401 - the fixture

V1 = "/api/v1"


def entity(n: int) -> dict[str, object]:
    return {"name": f"e{n}", "entity_type": "note", "observations": [f"observation {n} " + "x" * 2000]}


def fill_up(served: Served) -> None:
    assert served.memory is not None
    conn = served.memory.store.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    assert conn.execute(f"PRAGMA max_page_count = {pages}").fetchone()[0] == pages


def test_a_full_memory_database_answers_507_and_degrades_health(
    serve: Callable[..., Served], run_cli: Callable[..., CliResult], tmp_path: Path,  # noqa: F811
) -> None:
    source = serve()
    created = httpx.post(source.url + V1 + "/memory/entities/batch",
                         json={"entities": [entity(n) for n in range(40)]}, timeout=30)
    assert created.status_code == 200, created.text
    dump = tmp_path / "memory.jsonl"
    dump.write_text(httpx.get(source.url + V1 + "/memory/export", timeout=30).text)

    full = serve()
    before = httpx.get(full.url + V1 + "/health/detailed", timeout=10).json()
    assert before["storage"] == {"status": "healthy", "faults": 0}
    fill_up(full)

    refused = httpx.post(full.url + V1 + "/memory/import", content=dump.read_bytes(),
                         headers={"Content-Type": "application/x-ndjson"}, timeout=30)
    assert refused.status_code == 507, refused.text
    error = refused.json()["error"]
    assert error["code"] == "storage_full"
    assert "memory database" in error["message"] and "is full" in error["message"]
    assert "no transaction" not in error["message"]
    assert "free space" in error["hint"]

    one = httpx.post(full.url + V1 + "/memory/entities", json=entity(99), timeout=30)
    assert one.status_code == 507 and one.json()["error"]["code"] == "storage_full"

    cli = run_cli("memory", "import", str(dump), "--engine", full.url)
    assert cli.code != 0 and "is full" in cli.err and "free space" in cli.err
    assert "bug in the engine" not in cli.err

    health = httpx.get(full.url + V1 + "/health/detailed", timeout=10).json()
    assert health["status"] == "degraded"
    assert health["storage"]["status"] == "degraded" and health["storage"]["code"] == "storage_full"
    assert health["storage"]["faults"] == 3 and "free space" in health["storage"]["hint"]
    shown = run_cli("health", "--engine", full.url, "--detailed")
    assert shown.code == 1 and "  storage: degraded: the engine's memory database" in shown.out
    assert "    hint: free space" in shown.out
    # reads go on: the memory still answers what it holds
    listed = httpx.get(full.url + V1 + "/memory/entities", timeout=10)
    assert listed.status_code == 200 and listed.json()["entities"] == []


def test_a_read_only_memory_database_answers_503_storage_read_only(serve: Callable[..., Served]) -> None:  # noqa: F811
    """``PRAGMA query_only`` makes SQLite refuse writes with its own SQLITE_READONLY."""
    served = serve()
    assert served.memory is not None
    served.memory.store.conn.execute("PRAGMA query_only = ON")
    refused = httpx.post(served.url + V1 + "/memory/entities", json=entity(1), timeout=30)
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "storage_read_only" and "readonly database" in error["message"]
    assert "writable" in error["hint"]
    health = httpx.get(served.url + V1 + "/health/detailed", timeout=10).json()
    assert health["status"] == "degraded" and health["storage"]["code"] == "storage_read_only"
    served.memory.store.conn.execute("PRAGMA query_only = OFF")
    assert httpx.post(served.url + V1 + "/memory/entities", json=entity(1), timeout=30).status_code == 201
