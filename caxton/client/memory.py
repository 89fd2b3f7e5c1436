"""Client functions for the engine's memory API (``/api/v1/memory/...``).

Called by ``caxton.cli.memory``. Each function takes an open
``caxton.client.transport.EngineClient`` and returns the answer parsed into its
``caxton.spec.api`` model; errors arrive as ``caxton.errors`` values (413
payload too large, 409 conflict or limit, 503 memory disabled/unavailable).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence

from caxton.client.transport import EngineClient, build
from caxton.spec import api

#: Import bodies are sent in chunks below the engine's default 1 MiB request limit.
IMPORT_CHUNK_BYTES = 512 * 1024
NDJSON = {"Content-Type": "application/x-ndjson"}


def health(client: EngineClient) -> api.MemoryHealth:
    """``/health/memory``: the memory's ``status`` (or disabled), the model and the entity count."""
    return client.call(api.MemoryHealth, "GET", "/health/memory")


def stats(client: EngineClient) -> api.MemoryStats:
    return client.call(api.MemoryStats, "GET", "/memory/stats")


def search(
    client: EngineClient,
    query: str,
    *,
    k: int = 10,
    min_similarity: float | None = None,
    types: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
    agent: str | None = None,
) -> api.SearchResults:
    body = build(api.SearchRequest, query=query, k=k, min_similarity=min_similarity,
                 types=list(types) if types else None, scopes=list(scopes) if scopes else None, agent=agent)
    return client.call(api.SearchResults, "POST", "/memory/search", json=body.model_dump(mode="json"))


def add(client: EngineClient, entities: Sequence[api.EntityRequest], *, merge: str = "error") -> api.EntityList:
    """Store entities in one batch (``merge``: update, skip or error when one exists)."""
    body = build(api.BatchRequest, entities=list(entities), merge=merge)
    return client.call(api.EntityList, "POST", "/memory/entities/batch", json=body.model_dump(mode="json"))


def get(client: EngineClient, entity_id: int) -> api.Entity:
    return client.call(api.Entity, "GET", f"/memory/entities/{int(entity_id)}")


def delete(client: EngineClient, entity_id: int) -> api.Deleted:
    return client.call(api.Deleted, "DELETE", f"/memory/entities/{int(entity_id)}")


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
) -> api.ImportReport:
    """Send an export in chunks (each checked whole by the engine, then written); sum the reports."""
    total = api.ImportReport(created=0, updated=0, skipped=0, relations=0, errors=[], requests=0)
    for chunk in _chunks(lines, chunk_bytes):
        report = client.call(api.ImportReport, "POST", "/memory/import", params={"merge": merge},
                             content=chunk.encode(), headers=NDJSON)
        total.created += report.created
        total.updated += report.updated
        total.skipped += report.skipped
        total.relations += report.relations
        total.errors.extend(report.errors)
        total.requests = (total.requests or 0) + 1
    return total


def vacuum(client: EngineClient) -> api.VacuumReport:
    return client.call(api.VacuumReport, "POST", "/memory/vacuum")


def reindex(client: EngineClient) -> api.ReindexReport:
    return client.call(api.ReindexReport, "POST", "/memory/reindex")


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
