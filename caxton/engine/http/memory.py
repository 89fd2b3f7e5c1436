"""HTTP routes of the vector memory under ``/api/v1/memory`` and ``/api/v1/health/memory``.

Mounted by ``caxton.engine.http.app.create_app`` (``routes()``).
The work is done by the engine's ``caxton.memory.service.MemoryService``
(``engine.memory``; None when ``memory.enabled`` is false). Handlers are plain
``def`` so FastAPI runs them in its thread pool (the service is thread-safe);
errors are ``caxton.errors`` values that ``create_app``'s handler turns into
JSON (413 oversized, 409 conflict/limit, 404, 503 memory unavailable).
Who may call each route: ``caxton.engine.auth.ROUTE_ROLES`` (memory-read, memory-write, admin).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from caxton import errors
from caxton.engine.http.deps import EngineDep, router as new_router
from caxton.engine.http.openapi import errors as refusals
from caxton.memory import models
from caxton.spec import api as wire

if TYPE_CHECKING:
    from caxton.memory.service import MemoryService

NDJSON = "application/x-ndjson"
ScopeName = wire.Scope
MergeName = wire.Merge
#: An entity or relation id in a path (an integer SQLite can hold).
RowId = Annotated[int, Path(ge=wire.MIN_INT, le=wire.MAX_INT)]


def _item(body: wire.EntityRequest) -> models.EntityInput:
    return models.EntityInput(body.name, body.entity_type, tuple(body.observations), body.scope, body.owner)


def memory_of(engine: Any) -> MemoryService:
    """The engine's memory, or 503 with a hint when it is disabled."""
    memory: MemoryService | None = getattr(engine, "memory", None)
    failed: errors.CaxtonError | None = getattr(engine, "memory_error", None)
    if memory is None and failed is not None:
        raise errors.Unavailable(f"the engine's memory could not be opened: {failed.message}", hint=failed.hint)
    if memory is None:
        raise errors.Unavailable(
            "the engine's memory is disabled",
            hint="set memory.enabled: true in caxton.yaml (or CAXTON_MEMORY_ENABLED=true) and restart the engine",
        )
    return memory


def routes() -> APIRouter:
    """The memory routes."""
    router = new_router()
    _entity_routes(router)
    _search_routes(router)
    _relation_routes(router)
    _maintenance_routes(router)
    return router


def _entity_routes(router: APIRouter) -> None:
    @router.get("/memory/entities", tags=["memory"], response_model=wire.EntityList, responses=refusals(503))
    def list_entities(
        engine: EngineDep,
        name: str | None = None,
        scope: ScopeName | None = None,
        owner: str | None = None,
        entity_type: str | None = Query(None, alias="type"),
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=wire.MAX_INT),
    ) -> dict[str, Any]:
        found = memory_of(engine).list_entities(
            name=name,
            scopes=[scope] if scope else None,
            owner=owner,
            entity_type=entity_type,
            limit=limit,
            offset=offset,
        )
        return {"entities": [e.to_dict() for e in found]}

    @router.post("/memory/entities", tags=["memory"], status_code=201, response_model=wire.Entity,
                 responses=refusals(409, 503))
    def create_entity(engine: EngineDep, body: wire.EntityRequest) -> dict[str, Any]:
        return memory_of(engine).create_entity(_item(body)).to_dict()

    @router.post("/memory/entities/batch", tags=["memory"], response_model=wire.EntityList,
                 responses=refusals(409, 503))
    def create_batch(engine: EngineDep, body: wire.BatchRequest) -> dict[str, Any]:
        stored = memory_of(engine).create_entities([_item(e) for e in body.entities], merge=body.merge)
        return {"entities": [e.to_dict() for e in stored]}

    @router.get("/memory/entities/{entity_id}", tags=["memory"], response_model=wire.Entity,
                responses=refusals(404, 503))
    def get_entity(engine: EngineDep, entity_id: RowId) -> dict[str, Any]:
        return memory_of(engine).get_entity(entity_id).to_dict()

    @router.get("/memory/entities/{entity_id}/neighbours", tags=["memory"], response_model=wire.Graph,
                responses=refusals(404, 503))
    def neighbours(engine: EngineDep, entity_id: RowId, depth: int = Query(1, ge=1, le=5)) -> dict[str, Any]:
        return memory_of(engine).neighbours(entity_id, depth).to_dict()

    @router.patch("/memory/entities/{entity_id}", tags=["memory"], response_model=wire.Entity,
                  responses=refusals(404, 409, 503))
    def update_entity(engine: EngineDep, entity_id: RowId, body: wire.EntityPatch) -> dict[str, Any]:
        return (
            memory_of(engine)
            .update_entity(
                entity_id,
                entity_type=body.entity_type,
                observations=body.observations,
                add_observations=body.add_observations,
                expected_version=body.expected_version,
            )
            .to_dict()
        )

    @router.delete("/memory/entities/{entity_id}", tags=["memory"], response_model=wire.Deleted,
                   responses=refusals(404, 503))
    def delete_entity(engine: EngineDep, entity_id: RowId) -> dict[str, Any]:
        memory_of(engine).delete_entity(entity_id)
        return {"deleted": entity_id}


def _search_routes(router: APIRouter) -> None:
    @router.post("/memory/search", tags=["memory"], response_model=wire.SearchResults, responses=refusals(503))
    def search(engine: EngineDep, body: wire.SearchRequest) -> dict[str, Any]:
        """Semantic search; ``similarity`` is cosine similarity (higher is closer)."""
        hits = memory_of(engine).search(
            body.query, body.k, body.min_similarity, types=body.types, scopes=body.scopes, agent=body.agent
        )
        return {"query": body.query, "results": [h.to_dict() for h in hits]}


def _relation_routes(router: APIRouter) -> None:
    @router.get("/memory/relations", tags=["memory"], response_model=wire.RelationList,
                responses=refusals(404, 503))
    def list_relations(engine: EngineDep, entity_id: int | None = Query(None, ge=wire.MIN_INT, le=wire.MAX_INT)) -> dict[str, Any]:
        return {"relations": [r.to_dict() for r in memory_of(engine).relations(entity_id)]}

    @router.post("/memory/relations", tags=["memory"], response_model=wire.Relation,
                 responses=refusals(404, 409, 503))
    def relate(engine: EngineDep, body: wire.RelationRequest) -> dict[str, Any]:
        return memory_of(engine).relate(body.from_id, body.to_id, body.relation_type, body.strength).to_dict()

    @router.delete("/memory/relations/{relation_id}", tags=["memory"], response_model=wire.Deleted,
                   responses=refusals(404, 503))
    def delete_relation(engine: EngineDep, relation_id: RowId) -> dict[str, Any]:
        memory_of(engine).delete_relation(relation_id)
        return {"deleted": relation_id}


def _maintenance_routes(router: APIRouter) -> None:
    @router.get("/memory/stats", tags=["memory"], response_model=wire.MemoryStats, responses=refusals(503))
    def stats(engine: EngineDep) -> dict[str, Any]:
        return memory_of(engine).stats()

    @router.get("/memory/export", tags=["memory"], response_class=Response, responses={
           200: {"description": "JSON lines", "content": {NDJSON: {"schema": {"type": "string"}}}}, **refusals(503)})
    def export(engine: EngineDep) -> Response:
        """Every entity and relation as JSON lines (see docs/memory.md)."""
        out = io.StringIO()
        memory_of(engine).export_jsonl(out)
        return Response(out.getvalue(), media_type=NDJSON)

    @router.post("/memory/import", tags=["memory"], response_model=wire.ImportReport,
                 responses=refusals(409, 503), openapi_extra={"requestBody": {
                     "required": True, "content": {NDJSON: {"schema": {"type": "string"}}}}})
    async def import_lines(engine: EngineDep, request: Request, merge: MergeName = "update") -> dict[str, Any]:
        """Body: JSON lines as produced by ``/memory/export``; checked whole before anything is written."""
        from starlette.concurrency import run_in_threadpool

        try:
            text = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise errors.InvalidInput(f"import body is not UTF-8: {exc.reason}") from exc
        memory = memory_of(engine)
        report = await run_in_threadpool(memory.import_jsonl, text.splitlines(), merge)
        return report.to_dict()

    @router.post("/memory/vacuum", tags=["memory"], response_model=wire.VacuumReport, responses=refusals(503))
    def vacuum(engine: EngineDep) -> dict[str, Any]:
        return dict(memory_of(engine).vacuum())

    @router.post("/memory/reindex", tags=["memory"], response_model=wire.ReindexReport, responses=refusals(503))
    def reindex(engine: EngineDep) -> dict[str, Any]:
        return memory_of(engine).reindex()

    @router.get("/health/memory", tags=["health"], response_model=wire.MemoryHealth)
    def memory_health(engine: EngineDep) -> dict[str, Any]:
        """Model, entity count and ``status`` (healthy, degraded: reindex needed, unhealthy: the model cannot
        be loaded); ``enabled`` is false when ``memory.enabled`` is."""
        health: dict[str, Any] = engine.memory_health()
        return health
