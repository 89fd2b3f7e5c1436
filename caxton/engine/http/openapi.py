"""The engine's OpenAPI document (``GET /openapi.json``): the truth about the wire.

The bodies are the models of ``caxton.spec.api``, declared on the routes.
This module adds what the routes cannot say about themselves:

- readable operation ids (``listAgents``, ``submitApply``): ``operation_id``,
  FastAPI's ``generate_unique_id_function``;
- every refusal as the one error body (``caxton.spec.api.ErrorBody``),
  including FastAPI's own 422 (documented as ``{"detail": [...]}`` by default,
  answered as ``{"error": ...}`` by ``caxton.engine.http.app``), and the refusals
  of the middleware that run before any route (``caxton.engine.guard``: 401,
  403, 415; ``caxton.engine.ratelimit``: 429; ``caxton.engine.limits``: 400,
  413, 431) on the operations they apply to;
- the bearer security scheme, required on every operation whose role
  (``caxton.engine.auth.ROUTE_ROLES``) is not open.

``errors(404, 409)`` is what a route passes as ``responses=`` for the refusals
of its own work. ``WireRoute`` serialises a response model without the fields
its data did not set, so the wire is exactly what the engine built.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from caxton.engine.auth import METRICS, OPEN, ROUTE_ROLES
from caxton.engine.guard import STATE_CHANGING
from caxton.engine.ratelimit import budget_of
from caxton.spec.api import STREAM_DATA, ErrorBody

SCHEME = "bearer"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
#: What each status means on this engine (the ``description`` of its response).
MEANING = {
    400: "malformed request (e.g. JSON nested too deep, a bad name)",
    401: "no token, or a token the engine does not know",
    403: "the token lacks the role, or a foreign Host/Origin",
    404: "not found",
    409: "conflict with the engine's state (lock held, stale plan, rollout in progress, limit reached)",
    413: "request body larger than the engine accepts",
    415: "a state-changing request whose body is not JSON",
    422: "invalid request: the error's details list every invalid field",
    429: "rate limited: retry after the Retry-After header's seconds",
    431: "request headers too large",
    500: "internal error (a bug in the engine; see its log)",
    502: "the agent failed (trap, fuel, memory limit, provider error: details.reason)",
    503: "unavailable (starting, stopping, suspended agent, open circuit, memory disabled, read-only storage, "
         "the PostgreSQL store does not answer: store_unavailable)",
    504: "the agent did not answer in time",
    507: "the engine's disk (or a database's size cap) is full (storage_full); see docs/api.md",
}
#: operationId by endpoint function name (and for the root probes, by path).
OPERATION_IDS = {
    "/healthz": "getLiveness", "/readyz": "getReadiness",
    "health": "getHealth", "health_detailed": "getHealthDetailed", "ready": "getReady", "state": "getState",
    "list_agents": "listAgents", "get_agent": "getAgent", "deploy": "deployAgent", "send": "sendMessage",
    "suspend": "suspendAgent", "resume": "resumeAgent", "remove": "deleteAgent", "logs": "getAgentLogs",
    "events": "listEvents", "events_stream": "streamEvents", "prometheus": "getMetrics",
    "lock_status": "getLock", "lock_acquire": "acquireLock", "lock_renew": "renewLock", "lock_release": "releaseLock",
    "apply_submit": "submitApply", "apply_list": "listApplies", "apply_get": "getApply",
    "revisions": "listRevisions", "rollback": "rollbackAgent",
    "rollouts": "listRollouts", "rollout": "listAgentRollouts", "rollout_series": "getRolloutSeries", "promote": "promoteRollout", "abort": "abortRollout",
    "create_backup": "createBackup", "download_backup": "downloadBackup",
    "list_entities": "listEntities", "create_entity": "createEntity", "create_batch": "createEntities",
    "get_entity": "getEntity", "neighbours": "getEntityNeighbours", "update_entity": "updateEntity",
    "delete_entity": "deleteEntity", "search": "searchMemory", "list_relations": "listRelations",
    "relate": "createRelation", "delete_relation": "deleteRelation", "stats": "getMemoryStats",
    "export": "exportMemory", "import_lines": "importMemory", "vacuum": "vacuumMemory", "reindex": "reindexMemory",
    "memory_health": "getMemoryHealth", "reconcile_status": "getReconcileStatus",
    "reconcile_report": "reportReconcileStatus", "reconcile_trigger": "triggerReconcile",
}


def operation_id(route: APIRoute) -> str:
    """A readable, stable operationId (camelCase of the function name when not listed)."""
    known = OPERATION_IDS.get(route.path) or OPERATION_IDS.get(route.name)
    if known is not None:
        return known
    head, *rest = route.name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status answered with the one error body."""
    return {status: {"model": ErrorBody, "description": MEANING.get(status, "refused")} for status in statuses}


class WireRoute(APIRoute):
    """A route whose response model leaves out the fields its data did not set (the wire stays as built)."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().__init__(path, endpoint, **kwargs)


def install(app: FastAPI, *, metrics_open: bool) -> None:
    """Make ``app.openapi`` build the engine's document (once) as the module docstring says."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            app.openapi_schema = complete(document, metrics_open=metrics_open)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def complete(document: dict[str, Any], *, metrics_open: bool) -> dict[str, Any]:
    """``document`` with the error body, the refusals of the middleware and the security scheme."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    models: list[type[BaseModel]] = [ErrorBody, *STREAM_DATA.values()]
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    components["securitySchemes"] = {
        SCHEME: {"type": "http", "scheme": "bearer",
                 "description": "an API token (`caxton token create`, or security.api_token); "
                                "not needed when the engine has no tokens configured"},
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _complete(operation, method.upper(), path, metrics_open)
    return document


def _complete(operation: dict[str, Any], method: str, path: str, metrics_open: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    role = ROUTE_ROLES.get((method, path))
    open_ = role == OPEN or (role == METRICS and metrics_open)
    operation["security"] = [] if open_ else [{SCHEME: []}]
    refusals = {403, 431, 500}
    if not open_:
        refusals |= {401, 503}  # 503: store_unavailable, for every route that may read the store
    if budget_of(method, _example(path)) is not None:
        refusals.add(429)
    if method in STATE_CHANGING:
        refusals |= {400, 413, 415, 503, 507}  # 503/507: a write on read-only or full storage
    if "parameters" in operation or "requestBody" in operation:
        refusals.add(422)
    for status in sorted(refusals):
        responses.setdefault(str(status), _error(status))
    for code, response in responses.items():
        streamed = response.get("content", {}).get("text/event-stream", {})
        if "itemSchema" in streamed:
            streamed.pop("schema", None)  # FastAPI's {"type": "string"} would be the whole stream's (OpenAPI 3.2)
        if code.isdigit() and int(code) >= 400:
            response["content"] = {"application/json": {"schema": ERROR_REF}}
            if code == "422":
                response["description"] = MEANING[422]
    if role is not None and not open_:
        operation["description"] = (operation.get("description", "") + f"\n\nRole: `{role}`.").strip()


def event_stream() -> dict[str, Any]:
    """The ``text/event-stream`` content of ``GET /events/stream`` (``itemSchema``, as OpenAPI 3.2 says): each
    event's ``data`` is the JSON of the model ``caxton.spec.api.STREAM_DATA`` names for its ``event:`` kind."""
    kinds: dict[str, list[str]] = {}
    for kind, model in STREAM_DATA.items():
        kinds.setdefault(model.__name__, []).append(kind)
    return {"text/event-stream": {"itemSchema": {"oneOf": [
        {"type": "object", "required": ["event", "data"],
         "properties": {"event": {"type": "string", "enum": named},
                        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "engine events only"},
                        "retry": {"type": "integer", "minimum": 0},
                        "data": {"type": "string", "contentMediaType": "application/json",
                                 "contentSchema": {"$ref": f"#/components/schemas/{name}"}}}}
        for name, named in kinds.items()]}}}


def _error(status: int) -> dict[str, Any]:
    return {"description": MEANING[status], "content": {"application/json": {"schema": ERROR_REF}}}


def _example(path: str) -> str:
    """``path`` with its parameters filled in (the rate limits match concrete paths)."""
    return re.sub(r"\{[^}]+\}", "x", path)
