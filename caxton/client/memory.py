"""Client functions for the engine's memory API (``/api/v1/memory/...``).

Called by ``caxton.cli.memory``. Each function takes an open
``caxton.client.engine.EngineClient`` and returns the decoded JSON; errors
arrive as ``caxton.errors`` values (413 payload too large, 409 conflict or
limit, 503 memory disabled/unavailable).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caxton.client.engine import EngineClient

#: Import bodies are sent in chunks below the engine's default 1 MiB request limit.
IMPORT_CHUNK_BYTES = 512 * 1024
NDJSON = {"Content-Type": "application/x-ndjson"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def health(client: EngineClient) -> dict[str, Any]:
    """``/health/memory``: ``status`` healthy, degraded or unhealthy, ``enabled``, the model and the entity count."""
    return _dict(client.request("GET", "/health/memory"))


def stats(client: EngineClient) -> dict[str, Any]:
    return _dict(client.request("GET", "/memory/stats"))


def search(
    client: EngineClient,
    query: str,
    *,
    k: int = 10,
    min_similarity: float | None = None,
    types: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    agent: str | None = None,
) -> dict[str, Any]:
    body = {
        "query": query,
        "k": k,
        "min_similarity": min_similarity,
        "types": list(types) if types else None,
        "scopes": list(scopes) if scopes else None,
        "agent": agent,
    }
    return _dict(client.request("POST", "/memory/search", json=body))


def add(client: EngineClient, entities: Sequence[dict[str, Any]], *, merge: str = "error") -> dict[str, Any]:
    """Store entities (``name``, ``entity_type``, ``observations``, ``scope``, ``owner``) in one batch."""
    return _dict(client.request("POST", "/memory/entities/batch", json={"entities": list(entities), "merge": merge}))


def get(client: EngineClient, entity_id: int) -> dict[str, Any]:
    return _dict(client.request("GET", f"/memory/entities/{int(entity_id)}"))


def delete(client: EngineClient, entity_id: int) -> dict[str, Any]:
    return _dict(client.request("DELETE", f"/memory/entities/{int(entity_id)}"))


def export(client: EngineClient) -> str:
    """The whole memory as JSON lines."""
    return str(client.request("GET", "/memory/export"))


def _chunks(lines: Iterable[str], limit: int) -> Iterator[str]:
    chunk: list[str] = []
    size = 0
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if chunk and size + len(line.encode()) + 1 > limit:
            yield "\n".join(chunk) + "\n"
            chunk, size = [], 0
        chunk.append(line)
        size += len(line.encode()) + 1
    if chunk:
        yield "\n".join(chunk) + "\n"


def import_lines(
    client: EngineClient, lines: Iterable[str], *, merge: str = "update", chunk_bytes: int = IMPORT_CHUNK_BYTES
) -> dict[str, Any]:
    """Send an export in chunks (each checked whole by the engine, then written); sum the reports."""
    total: dict[str, Any] = {"created": 0, "updated": 0, "skipped": 0, "relations": 0, "errors": [], "requests": 0}
    for chunk in _chunks(lines, chunk_bytes):
        report = _dict(
            client.request("POST", "/memory/import", params={"merge": merge}, content=chunk.encode(), headers=NDJSON)
        )
        for key in ("created", "updated", "skipped", "relations"):
            total[key] += int(report.get(key, 0))
        total["errors"].extend(report.get("errors", []))
        total["requests"] += 1
    return total


def vacuum(client: EngineClient) -> dict[str, Any]:
    return _dict(client.request("POST", "/memory/vacuum"))


def reindex(client: EngineClient) -> dict[str, Any]:
    return _dict(client.request("POST", "/memory/reindex"))


def entity_line(name: str, entity_type: str, observations: Sequence[str], scope: str, owner: str | None) -> str:
    """One import line for an entity (used by scripts that build imports)."""
    return json.dumps(
        {
            "kind": "entity",
            "name": name,
            "entity_type": entity_type,
            "observations": list(observations),
            "scope": scope,
            "owner": owner,
        }
    )
