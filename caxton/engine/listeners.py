"""uvicorn servers run in a thread, and the metrics listener (``observability.metrics_port``).

``threaded`` runs one uvicorn server on an already bound socket in a daemon
thread until the ``with`` block ends (``caxton up`` serves its API this way).
``metrics_listener`` is the second, plain-HTTP listener of
``observability.metrics_port``: only ``GET /metrics`` and ``GET /healthz``,
behind the same guard as the API (so ``observability.metrics_auth`` and the
tokens apply there too, reloaded with them), never TLS (a scraper needs no
client certificate). ``caxton server start`` and ``caxton up`` start it when
``metrics_enabled`` is true and ``metrics_port`` is not 0.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ContextManager

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caxton import metrics
from caxton.engine.guard import Gate, Guard
from caxton.engine.http_metrics import HttpMetrics
from caxton.engine.logsetup import RequestIds
from caxton.errors import CaxtonError

if TYPE_CHECKING:
    from caxton.engine.core import Engine

START_TIMEOUT = 60.0
METRICS_THREAD = "caxton-metrics"


class Server(uvicorn.Server):
    """uvicorn.Server that runs ``before_shutdown`` as its graceful shutdown begins, then keeps serving
    for ``drain_delay`` seconds before uvicorn's own shutdown (stop accepting, finish in-flight requests).

    uvicorn waits for every open connection before the app's lifespan ends (``Engine.stop``);
    an event stream (``GET /api/v1/events/stream``) is never done by itself, so the engine's
    hub is closed here first (``Engine.drain``): each stream sends ``event: end`` and ends, and
    ``/readyz`` answers 503 from then on. During ``drain_delay`` (``server.drain_delay``) every
    request is still served, so a load balancer that learns readiness from ``/readyz`` (Kubernetes)
    stops sending traffic before the port closes; one that retries refused connections (nginx,
    ``deploy/nginx/caxton.conf``) needs no delay. A second SIGINT ends the delay at once.
    """

    def __init__(self, config: uvicorn.Config, *, before_shutdown: Callable[[], None] | None = None,
                 drain_delay: float = 0.0) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown
        self.drain_delay = drain_delay

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            self.before_shutdown()
        await self._keep_serving()
        await super().shutdown(sockets=sockets)

    async def _keep_serving(self) -> None:
        if self.drain_delay <= 0:
            return
        logging.getLogger("caxton.engine.server").info(
            "draining: /readyz answers 503; serving %.3gs more (server.drain_delay), then finishing in-flight "
            "requests", self.drain_delay)
        deadline = time.monotonic() + self.drain_delay
        while not self.force_exit and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(0.05, left))


class WholeReplies(HttpToolsProtocol):
    """uvicorn's HTTP protocol (httptools) sending what one loop step writes in one ``send``.

    uvicorn writes a response's head on ``http.response.start`` and its body on the next ASGI
    message, two ``send`` calls: a process killed between them (kill -9) leaves a peer with a
    head and no body, a reply torn after it began, which a load balancer can neither retry nor
    pass on whole. Held until the end of the loop step, a small reply's head and body leave as
    one write, so a dying engine sends a reply whole or not at all.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self.transport = _Coalescing(transport)  # type: ignore[assignment]


class _Coalescing:
    """A transport whose writes within one event loop step leave together (``WholeReplies``)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._flush()
        self._transport.set_protocol(protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@contextmanager
def threaded(config: uvicorn.Config, sock: socket.socket, *, name: str, stop_timeout: float,
             before_shutdown: Callable[[], None] | None = None, drain_delay: float = 0.0) -> Iterator[None]:
    """``config``'s app served on ``sock`` by a thread from when it listens to the end of the block."""
    http = Server(config, before_shutdown=before_shutdown, drain_delay=drain_delay)
    thread = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        _wait_listening(http, thread)
        yield
    finally:
        http.should_exit = True
        thread.join(timeout=stop_timeout)


def metrics_app(engine: Engine, gate: Gate) -> Starlette:
    """``/metrics`` and ``/healthz`` only; the gate is the API's (its policy already covers both routes)."""

    async def exposition(_: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(await run_in_threadpool(metrics.exposition), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse(engine.health())

    app = Starlette(routes=[Route("/metrics", exposition, methods=["GET"]), Route("/healthz", healthz,
                                                                                   methods=["GET"])])
    app.add_middleware(Guard, gate=gate)
    app.add_middleware(HttpMetrics)
    app.add_middleware(RequestIds)
    return app


class _QuietMetricsThread(logging.Filter):
    """uvicorn's info lines (started, shutting down) are said once, by the API's server, not again by this one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.threadName != METRICS_THREAD


_QUIET = _QuietMetricsThread()


def metrics_listener(engine: Engine, gate: Gate, sock: socket.socket | None) -> ContextManager[None]:
    """Serve ``metrics_app`` on ``sock`` (``None``: no metrics listener) for the block."""
    if sock is None:
        return nullcontext()
    logging.getLogger("uvicorn.error").addFilter(_QUIET)  # a no-op when already there
    config = uvicorn.Config(metrics_app(engine, gate), log_config=None, access_log=False, lifespan="off",
                            server_header=False, timeout_graceful_shutdown=1)
    return threaded(config, sock, name=METRICS_THREAD, stop_timeout=10.0)


def wants_listener(engine: Engine) -> bool:
    observability = engine.config.observability
    return observability.metrics_enabled and observability.metrics_port != 0


def _wait_listening(http: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not http.started:
        if not thread.is_alive():
            raise CaxtonError("the engine API did not start", hint="see the log lines above")
        if time.monotonic() > deadline:
            raise CaxtonError(f"the engine API did not start in {START_TIMEOUT:.0f}s", hint="see the log lines above")
        time.sleep(0.02)
