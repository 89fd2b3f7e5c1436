"""The engine's HTTP API under ``/api/v1`` (FastAPI), plus ``/metrics``, ``/healthz`` and ``/readyz``.

``/metrics`` exists only while ``observability.metrics_enabled`` (else 404).

``create_app(engine)`` builds the application: one ``APIRouter`` per resource
(health, state and agents here; ``applies``, ``reconcile``, ``rollouts``,
``memory``, ``backups`` beside it), whose routes take the ``Engine`` facade and
the caller as FastAPI dependencies (``caxton.engine.http.deps``). This module
is the ONE place where ``caxton.errors`` become HTTP responses (``_caxton_error``: status from
``http_status``, body ``{"error": {"code", "message", "hint"}}``); malformed
requests become 4xx through the same shape. Who may call what is decided
before any body is read by ``caxton.engine.guard.Guard`` (inside only
``caxton.engine.http_metrics``, which counts requests by route and status), from the roles table ``caxton.engine.auth.ROUTE_ROLES``. Inside
it, rate limits (``caxton.engine.ratelimit``: 429 per principal, reloaded on
SIGHUP), then request limits (``caxton.engine.limits``: 431 headers, 413
bodies over ``server.max_request_size``, 400 JSON nested too deep). The
endpoint list is documented in ``docs/api.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import functools
import math

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from caxton import __version__, metrics
from caxton.engine.http import applies, backups, memory, openapi, reconcile, rollouts, stream, ui
from caxton.engine.http.deps import PREFIX, CallerDep, EngineDep, engine_of, mount, router as new_router
from caxton.engine.auth import Policy, Principal, Tokens, attributed, load_tokens
from caxton.engine.serving import threads
from caxton.engine.serving.bulkhead import Bulkheads
from caxton.engine.guard import Gate, Guard, reload_tokens
from caxton.engine.http_metrics import HttpMetrics
from caxton.engine.logsetup import RequestIds
from caxton.engine.core import Engine
from caxton.engine.limits import RequestLimits, error_body
from caxton.engine.ratelimit import Limiter, RateLimit
from caxton.engine.http.openapi import errors
from caxton.engine.state.records import Source
from caxton.spec import api as wire
from caxton.spec.state import StateSnapshot
from caxton.errors import (
    CaxtonError,
    InvalidInput,
    Unauthorized,
    Unavailable,
    storage_fault,
)
from caxton.spec.identity import agent_id

MESSAGES = PREFIX + "/agents/{name}/messages"
#: The message reply's encoder (``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``, built once).
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: Threads that run blocking endpoints of the control plane (store reads, applies); anyio's default is 40.
WORKER_THREADS = 256
#: How long a message waits on the loop for a WASM instance busy in a worker thread (``_deliver``).
BUSY_POLLS = 20
BUSY_POLL_S = 0.0005
#: FastAPI's native OpenTelemetry (FastAPI >= 0.16x) off: the engine exports its own metrics (``/metrics``),
#: and FastAPI looked up the global OpenTelemetry providers on every request (~10 us of a message).
FASTAPI_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False}


def _storage_fault(engine: Engine, error: Exception) -> CaxtonError | None:
    """The disk full / read-only condition behind a 5xx ``error`` (noted for health), or None."""
    if isinstance(error, CaxtonError) and error.http_status < 500:
        return None
    fault = storage_fault(error)
    if fault is not None:
        engine.storage_faults.note(fault)
    return fault


def _caxton_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, CaxtonError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
    retry = getattr(error, "retry_after", None)
    if isinstance(retry, float | int) and retry > 0:  # queue full, queue timeout, open circuit
        headers = {"Retry-After": str(max(1, math.ceil(retry)))}
    return JSONResponse(error_body(error), status_code=error.http_status, headers=headers)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"loc": ".".join(str(p) for p in item.get("loc", ())), "message": str(item.get("msg", ""))}
        for item in error.errors()
    ]
    first = problems[0] if problems else {"loc": "body", "message": "invalid request"}
    invalid = InvalidInput(f"invalid request: {first['loc']}: {first['message']}",
                           hint="see /openapi.json for the request shape", details=problems)
    return JSONResponse(error_body(invalid), status_code=invalid.http_status)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    body = {"error": {"code": code, "message": str(error.detail), "hint": "see /openapi.json for the endpoints"}}
    return JSONResponse(body, status_code=error.status_code)


def _unexpected(_: Request, error: Exception) -> JSONResponse:
    body = {"error": {"code": "internal_error", "message": f"{type(error).__name__}: {error}",
                      "hint": "this is a bug in the engine; see its log"}}
    return JSONResponse(body, status_code=500)


def _decode_module(module: str | None) -> bytes | None:
    if module is None:
        return None
    try:
        return base64.b64decode(module, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("module is not valid base64", hint="send the .wasm bytes base64-encoded") from None


def _source(body: wire.SourceRequest | None, caller: Principal | None) -> Source:
    source = Source(**body.model_dump()) if body else Source()
    return Source(attributed(caller, source.actor), source.plan_id, source.git_commit)


async def _message(
    engine: Engine, bulkheads: Bulkheads, name: str, body: wire.MessageRequest, size: int | None,
) -> bytes:
    """One message through its agent's bulkhead (a slot, given back after): the reply's JSON bytes."""
    slot = await bulkheads.admit(name)
    try:
        result = await _deliver(engine, name, body, size)
    finally:
        if slot is not None:
            slot[0].leave(slot[1])
    return _to_json(result).encode()


async def _deliver(engine: Engine, name: str, body: wire.MessageRequest, size: int | None) -> dict[str, Any]:
    """One message: on the loop when ``Engine.send_now`` can, else ``Engine.send`` in a message thread
    (``caxton.engine.serving.threads``: their own pool, at a lower CPU priority than the loop).

    While the agent's instance is busy with a message in a worker thread, poll for up to
    ``BUSY_POLLS`` x ``BUSY_POLL_S`` (the loop stays free) instead of queueing behind it in a thread:
    a thread that needs the GIL from a busy loop is slow, so every message sent there would make
    the next ones find the instance busy too.
    """
    for _ in range(BUSY_POLLS):
        try:
            result = engine.send_now(name, body.content, body.conversation_id, size_hint=size)
        except BlockingIOError:
            await anyio.sleep(BUSY_POLL_S)
            continue
        if result is not None:
            return result
        break
    send = functools.partial(engine.send, name, body.content, body.conversation_id, size_hint=size)
    return await threads.run(send)


def create_app(engine: Engine, tokens: Tokens | None = None) -> FastAPI:
    """The API over ``engine``; starts it on startup if needed and stops it on shutdown.

    ``tokens``: the engine's tokens (default: read from its config's ``security`` section).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Messages run in the thread pool; slow LLM calls must not starve WASM messages of threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        if not engine.started:
            await run_in_threadpool(engine.start)
        try:
            yield
        finally:
            await run_in_threadpool(engine.stop)

    app = FastAPI(title="Caxton engine API", version=__version__, lifespan=lifespan, telemetry=FASTAPI_TELEMETRY,
                  docs_url=None, redoc_url=None, generate_unique_id_function=openapi.operation_id)
    app.router.route_class = openapi.WireRoute
    app.state.engine = engine  # the routes' dependency (caxton.engine.http.deps.EngineDep)

    async def failed(request: Request, error: Exception) -> JSONResponse:
        """A ``CaxtonError`` as itself, any other exception as 500; a full or read-only disk as what it is.

        The handlers are ``async`` (all of them: a few us of CPU): Starlette runs a sync handler in the
        thread pool, and that hop was half the cost of a 429 refusal.
        """
        fault = _storage_fault(engine, error)
        if fault is not None:
            return _caxton_error(request, fault)
        return _caxton_error(request, error) if isinstance(error, CaxtonError) else _unexpected(request, error)

    app.add_exception_handler(CaxtonError, failed)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, failed)
    # Starlette runs the middleware added last first: rate limits, then request limits, then the routes.
    app.add_middleware(RequestLimits, limit=engine.config.server.max_request_size,
                       bulk={PREFIX + "/applies": engine.config.server.max_apply_size})
    limiter = Limiter(engine.config.security.rate_limits)
    engine.on_reload.append(lambda config: limiter.configure(config.security.rate_limits))
    app.add_middleware(RateLimit, limiter=limiter)  # inside Guard: it sees the principal
    config = engine.config
    gate = Gate.for_host(tokens or engine_tokens(engine), config.server.host, config.security.allowed_hosts)
    app.add_middleware(Guard, gate=gate)  # before any body is read
    app.add_middleware(HttpMetrics)  # the outermost but one, so it counts the guard's refusals too
    app.add_middleware(RequestIds)  # the outermost: every log line of a request names it
    app.state.gate = gate
    engine.on_reload.append(lambda new: reload_tokens(gate, new))
    bulkheads = Bulkheads(engine)
    app.state.bulkheads = bulkheads
    board = reconcile.Board()
    app.state.reconcile_board = board
    for router in (_health_routes(bulkheads, metrics_enabled=config.observability.metrics_enabled),
                   _state_routes(), _agent_routes(bulkheads), applies.routes(), reconcile.routes(board),
                   rollouts.routes(), memory.routes(), backups.routes(), stream.routes()):
        mount(app, router)
    mount(app, ui.routes(app))  # the console (last: it looks for the event stream among the routes above)
    gate.policy = Policy.compile(app.routes, metrics_open=config.observability.metrics_auth == "none")
    _messages_first(app)
    _plain_messages(app, engine, app.state.bulkheads)
    openapi.install(app, metrics_open=config.observability.metrics_auth == "none")
    return app


def _plain_messages(app: FastAPI, engine: Engine, bulkheads: Bulkheads) -> None:
    """Serve the plain messages without FastAPI's request machinery; everything else as before.

    The message route's ASGI app becomes ``messages``: it reads the body and, for a plain request
    (``Content-Type: application/json``, a body that ``json.loads`` and ``wire.MessageRequest``
    accept: exactly what FastAPI would parse and validate), runs ``_message`` and sends its reply
    itself. FastAPI's per-request work (a ``Request``, an exit stack, the content type parsed by
    ``email.message``, dependency solving, the endpoint call) was ~100 us of a message's ~400.
    Any other request (another content type, bad JSON, an invalid body, a client gone) is handed,
    body and all, to FastAPI's route, which answers it as it always did. Errors propagate to the
    same exception handlers (the app's ``ExceptionMiddleware``).
    """
    route = next(r for r in app.router.routes if getattr(r, "path", None) == MESSAGES)
    assert isinstance(route, APIRoute)
    framework = route.app

    async def messages(scope: Scope, receive: Receive, send: Send) -> None:
        received: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        plain = _plain_message(scope, b"".join(chunks)) if message["type"] == "http.request" else None
        if plain is None:
            await framework(scope, _replay(received, receive), send)
            return
        reply = await _message(engine, bulkheads, scope["path_params"]["name"], plain[0], plain[1])
        headers = [(b"content-length", str(len(reply)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    route.app = messages


def _plain_message(scope: Scope, body: bytes) -> tuple[wire.MessageRequest, int | None] | None:
    """A plain message request's body and declared size, or None when FastAPI's route must answer it."""
    content_type: bytes | None = None
    length: bytes | None = None
    for key, value in scope["headers"]:
        if key == b"content-type" and content_type is None:
            content_type = value
        elif key == b"content-length" and length is None:
            length = value
    if not body or content_type is None or content_type.lower() != b"application/json":
        return None
    if length is not None and not length.isdigit():
        return None
    try:
        request = wire.MessageRequest.model_validate(json.loads(body))
    except (ValueError, RecursionError):  # JSON or validation errors: FastAPI's route says which
        return None
    return request, (int(length) or None) if length is not None else None


def _replay(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first answers the messages already ``received``."""
    pending = deque(received)

    async def replay() -> Message:
        return pending.popleft() if pending else await receive()

    return replay


def _messages_first(app: FastAPI) -> None:
    """Starlette tries the routes in order; nearly every request is a message, and no other route
    matches a message's path, so its route goes first (it was the 11th: ~10 regex matches less each)."""
    routes = app.router.routes
    index = next(i for i, route in enumerate(routes) if getattr(route, "path", None) == MESSAGES)
    routes.insert(0, routes.pop(index))


def engine_tokens(engine: Engine) -> Tokens:
    """The tokens of the engine's config (``security.tokens_file`` and ``security.api_token``)."""
    security = engine.config.security
    return load_tokens(Path(security.tokens_file) if security.tokens_file else None, security.api_token)


def _health_routes(bulkheads: Bulkheads, *, metrics_enabled: bool) -> APIRouter:
    """Liveness, readiness (also as the open root probes ``/healthz`` and ``/readyz``) and ``/metrics``.

    Not under ``PREFIX`` as a whole: the probes and ``/metrics`` are at the root.
    """
    router = new_router(prefix="")

    @router.get(PREFIX + "/health", tags=["health"], response_model=wire.Health)
    async def health(engine: EngineDep) -> dict[str, Any]:
        """Liveness: always fast, no store access."""
        return engine.health()

    @router.get(PREFIX + "/health/detailed", tags=["health"], response_model=wire.HealthDetailed)
    def health_detailed(engine: EngineDep) -> dict[str, Any]:
        return engine.health_detailed()

    @router.get(PREFIX + "/ready", tags=["health"], response_model=wire.Ready, responses=errors(503))
    async def ready(engine: EngineDep) -> dict[str, Any]:
        if engine.stopping:
            raise Unavailable("the engine is shutting down", hint="send new traffic to another replica")
        if not engine.ready:
            raise Unavailable("the engine is not ready", hint="it is starting; retry")
        overload = bulkheads.overload()
        if overload is not None:
            raise Unavailable(f"the engine is overloaded: {overload}",
                              hint="send its messages elsewhere until they drain (docs/limits.md)")
        return {"ready": True}

    # Kubernetes-style root probes: the same answers as /api/v1/health and /api/v1/ready, open.
    router.add_api_route("/healthz", health, methods=["GET"], tags=["health"],
                         summary="Liveness (as /api/v1/health)", response_model=wire.Health)
    router.add_api_route("/readyz", ready, methods=["GET"], tags=["health"], summary="Readiness (as /api/v1/ready)",
                         response_model=wire.Ready, responses=errors(503))

    if not metrics_enabled:
        return router  # observability.metrics_enabled: false: /metrics is 404

    @router.get("/metrics", tags=["metrics"], response_class=Response,
                responses={200: {"description": "Prometheus text exposition",
                                 "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def _state_routes() -> APIRouter:
    """The live snapshot ``plan`` diffs against, and the event log."""
    router = new_router()

    @router.get("/state", tags=["state"], response_model=StateSnapshot)
    def state(engine: EngineDep) -> Response:
        """The live snapshot ``plan`` diffs against (``caxton.spec.state.StateSnapshot``).

        Serialised by pydantic directly: FastAPI's generic encoder took ~0.3 s at 1,000 agents.
        """
        return Response(engine.snapshot().model_dump_json(), media_type="application/json")

    @router.get("/events", tags=["state"], response_model=wire.EventList)
    def events(engine: EngineDep, agent: str | None = None, after: int = Query(0, ge=0, le=wire.MAX_INT),
               limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        return engine.events(agent=agent, after=after, limit=limit)

    return router


def _agent_routes(bulkheads: Bulkheads) -> APIRouter:
    """Agents: list, status, deploy, messages, suspend, resume, remove, logs."""
    router = new_router()

    @router.get("/agents", tags=["agents"], response_model=wire.AgentList)
    def list_agents(engine: EngineDep) -> dict[str, Any]:
        return engine.agent_list()

    @router.get("/agents/{name}", tags=["agents"], response_model=wire.AgentDetail, responses=errors(404))
    def get_agent(name: str, engine: EngineDep) -> dict[str, Any]:
        return engine.agent(name)

    @router.put("/agents/{name}", tags=["agents"], response_model=wire.OperationResult, responses=errors(409))
    def deploy(name: str, body: wire.DeployRequest, engine: EngineDep, caller: CallerDep) -> dict[str, Any]:
        """Create or update an agent: the deploy operation plan/apply drives."""
        given = body.spec.get("name")
        if not isinstance(given, str) or agent_id(given) != agent_id(name):
            raise InvalidInput(f"the spec's name {given!r} does not match the URL's agent {name!r}",
                               hint="PUT /api/v1/agents/<the spec's name>")
        return engine.deploy(body.spec, _decode_module(body.module), _source(body.source, caller)).to_dict()

    @router.post("/agents/{name}/messages", tags=["agents"], response_model=None,
                 responses={200: {"model": wire.MessageReply, "description": "the agent's reply"},
                            **errors(404, 429, 502, 503, 504)})
    async def send(name: str, body: wire.MessageRequest, request: Request) -> Response:
        """Send one message to the agent's serving revision and return its reply.

        First a slot of the agent's bulkhead (``caxton.engine.serving.bulkhead``: a bounded queue and
        wait, on the loop; 429/503 with Retry-After past them). Then a short bounded call (WASM)
        runs right here on the event loop (``Engine.send_now``: a thread hop costs more than the
        call); anything else runs in the message threads, so a slow agent never blocks the loop
        (health stays fast). The reply is encoded here, skipping FastAPI's response validation
        (the hot path).
        """
        # The engine is read from the request, not through a dependency: no dependency solving here.
        size = int(request.headers.get("content-length") or 0) or None
        return Response(await _message(engine_of(request), bulkheads, name, body, size),
                        media_type="application/json")

    @router.post("/agents/{name}/suspend", tags=["agents"], response_model=wire.OperationResult,
                 responses=errors(404, 409))
    def suspend(name: str, engine: EngineDep, caller: CallerDep,
                body: wire.ActionRequest | None = None) -> dict[str, Any]:
        return engine.suspend(name, _source(body.source if body else None, caller)).to_dict()

    @router.post("/agents/{name}/resume", tags=["agents"], response_model=wire.OperationResult,
                 responses=errors(404, 409))
    def resume(name: str, engine: EngineDep, caller: CallerDep,
               body: wire.ActionRequest | None = None) -> dict[str, Any]:
        return engine.resume(name, _source(body.source if body else None, caller)).to_dict()

    @router.delete("/agents/{name}", tags=["agents"], response_model=wire.OperationResult,
                   responses=errors(404, 409))
    def remove(name: str, engine: EngineDep, caller: CallerDep, actor: str | None = None,
               plan_id: str | None = None, git_commit: str | None = None) -> dict[str, Any]:
        source = Source(actor=attributed(caller, actor), plan_id=plan_id, git_commit=git_commit)
        return engine.remove(name, source).to_dict()

    @router.get("/agents/{name}/logs", tags=["agents"], response_model=wire.AgentLogs, responses=errors(404))
    def logs(name: str, engine: EngineDep, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        return engine.agent_logs(name, limit)

    return router
