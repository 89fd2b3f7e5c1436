"""The engine process: the ``Engine`` behind uvicorn, with a clean SIGTERM path.

``serve`` binds the socket itself (so a busy port is a clear error, and port
0 picks a free one), starts the engine (opening the store and recovering the
agents that were serving), only then listens (a starting replica refuses
connections: a load balancer sends them elsewhere), prints one line saying where the API is, and runs
uvicorn until SIGTERM or SIGINT. Shutdown turns ``/readyz`` to 503 at once
(``Engine.drain``), keeps serving for ``server.drain_delay`` (default 0), then stops
accepting connections, lets in-flight requests finish, drains and stops every runtime, and returns 0
(130 after SIGINT). SIGHUP reloads the settings (``caxton.engine.serving.reload``)
and never stops the engine. ``caxton server start`` calls it. ``embedded`` serves
the same engine from threads of the calling process (``caxton up``, whose main
thread runs the reconcile loop); both go through one start-up, ``started``.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from caxton.engine.http.app import create_app, engine_tokens
from caxton.engine.auth import Tokens, is_loopback, refuse_exposed
from caxton.engine.core import Engine
from caxton.engine.limits import MAX_HEADER_BYTES
from caxton.engine import listeners, logsetup
from caxton.engine.serving.reload import Reloader
from caxton.errors import CaxtonError, InvalidInput
from caxton.spec.project import ProjectConfig, TLSSettings

__all__ = ["Engine", "Serving", "bind", "embedded", "guarded_tokens", "serve", "started", "warn_if_open"]


class BindFailed(CaxtonError):
    code = "bind_failed"


def bind(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), listening unless ``listen`` is False
    (``started`` listens once the engine has started: until then connections are refused, so a load
    balancer sends them to another replica instead of holding them while this one recovers its agents)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio then sets TCP_NODELAY
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if listen:
            start_listening(sock)
    except OSError as error:
        sock.close()
        raise _bind_failed(host, port, error) from None
    sock.set_inheritable(True)
    return sock


def start_listening(sock: socket.socket) -> None:
    sock.listen(2048)


def _bind_failed(host: str, port: int, error: OSError) -> BindFailed:
    return BindFailed(f"cannot listen on {host}:{port}: {error.strerror or error}",
                      hint="pick another --port (or CAXTON_PORT), or stop what is using it")


@dataclass
class Serving:
    """An engine started behind bound sockets, with its app and uvicorn configuration (``started``)."""

    engine: Engine
    tokens: Tokens
    app: FastAPI
    config: uvicorn.Config
    sock: socket.socket
    metrics_sock: socket.socket | None
    url: str
    metrics_url: str | None
    #: The in-process admin token issued for ``internal`` (None without one, or when no token is configured).
    internal_token: str | None = None


@contextmanager
def started(
    engine: Engine, *, host: str, port: int, settings: Callable[[], ProjectConfig] | None = None,
    insecure_no_auth: bool = False, tls: bool = True, log_level: str | None = None, internal: str | None = None,
) -> Iterator[Serving]:
    """The engine's start-up, shared by ``serve`` and ``embedded``: the checks that refuse before binding
    (``server.tls`` files, an exposed engine without a token, a bad ``logging.file``), the sockets (API
    and metrics listener), SIGHUP reloads (``settings`` re-reads the configuration; default: the
    engine's own), the engine started and its app configured for uvicorn. On exit the engine stops
    (drained), the sockets and the log close.

    ``tls=False`` serves plain http whatever ``server.tls`` says (``caxton up``); ``log_level`` is
    uvicorn's (default: ``logging.level``); ``internal``: the name of an in-process admin token to issue
    (before anything serves, so a reload keeps it) when tokens are configured.
    """
    tls_settings = engine.config.server.tls if tls else TLSSettings()
    check_tls(tls_settings)
    tokens = guarded_tokens(engine, host, port, insecure_no_auth)
    internal_token = tokens.issue_internal(internal) if internal and tokens.configured else None
    engine_log = logsetup.EngineLog()
    engine_log.install(engine.config.logging)  # a bad logging.file refuses before binding
    sockets: list[socket.socket] = []
    try:
        sock = bind(host, port, listen=False)
        sockets.append(sock)
        metrics_sock = metrics_socket(engine, host)
        sockets += [metrics_sock] if metrics_sock is not None else []
        warn_if_open(tokens, host, port)
        engine.on_reload.append(engine_log.reload)
        with Reloader(engine, settings or (lambda: engine.config)).installed():
            try:
                engine.start()
                try:
                    start_listening(sock)
                except OSError as error:
                    raise _bind_failed(host, port, error) from None
                app = create_app(engine, tokens)
                config = uvicorn.Config(
                    app, log_level=log_level or engine.config.logging.level, log_config=None, access_log=False,
                    lifespan="on", timeout_graceful_shutdown=int(engine.config.server.drain_timeout) or 1,
                    server_header=False, http=listeners.WholeReplies,
                    # h11 (without httptools) refuses a request head past this; the 431 check is RequestLimits'.
                    h11_max_incomplete_event_size=4 * MAX_HEADER_BYTES, **_uvicorn_tls(tls_settings),
                )
                yield Serving(engine, tokens, app, config, sock, metrics_sock,
                              _url(sock, "https" if tls_settings.enabled else "http"),
                              _url(metrics_sock, "http") if metrics_sock is not None else None, internal_token)
            finally:
                if engine.started:
                    engine.stop()
    finally:
        for opened in sockets:
            opened.close()
        engine_log.close()


def serve(
    engine: Engine, *, host: str, port: int, announce: Callable[[str], None] | None = None,
    settings: Callable[[], ProjectConfig] | None = None, insecure_no_auth: bool = False,
) -> int:
    """Run the engine's API until a signal; return the exit code (0 after SIGTERM, 130 after SIGINT).

    ``settings`` re-reads the configuration on SIGHUP (default: the engine's own, i.e. hooks rerun).
    Refuses a non-loopback ``host`` when no token is configured, unless ``insecure_no_auth``.
    """
    received: list[int] = []
    previous = {sig: signal.signal(sig, _recorder(received)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with started(engine, host=host, port=port, settings=settings, insecure_no_auth=insecure_no_auth) as serving:
            server = _Server(serving.config, url=serving.url, data_dir=engine.data_dir, announce=announce or _print,
                             metrics_url=serving.metrics_url, before_shutdown=engine.drain,
                             drain_delay=engine.config.server.drain_delay,
                             state=engine.store.location if engine.store.dialect == "postgres" else None)
            with listeners.metrics_listener(engine, serving.app.state.gate, serving.metrics_sock):
                server.run(sockets=[serving.sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 130 if signal.SIGINT in received else 0


@contextmanager
def embedded(
    engine: Engine, *, host: str, port: int, settings: Callable[[], ProjectConfig] | None = None,
    insecure_no_auth: bool = False, internal: str | None = None,
) -> Iterator[Serving]:
    """The engine's API (plain http, uvicorn logging warnings only) and metrics listener served by
    threads of this process for the block, the caller keeping the main thread and its signals
    (``caxton up``). Same start-up and shutdown as ``serve``."""
    with started(engine, host=host, port=port, settings=settings, insecure_no_auth=insecure_no_auth, tls=False,
                 log_level="warning", internal=internal) as serving, \
            listeners.threaded(serving.config, serving.sock, name="caxton-api",
                               stop_timeout=_stop_timeout(engine),
                               before_shutdown=engine.drain, drain_delay=engine.config.server.drain_delay), \
            listeners.metrics_listener(engine, serving.app.state.gate, serving.metrics_sock):
        yield serving


def _stop_timeout(engine: Engine) -> float:
    server = engine.config.server
    return server.drain_delay + server.drain_timeout + 10


def metrics_socket(engine: Engine, host: str) -> socket.socket | None:
    """The socket of the metrics listener on ``host:observability.metrics_port``, or None when there is none."""
    return bind(host, engine.config.observability.metrics_port) if listeners.wants_listener(engine) else None


def guarded_tokens(engine: Engine, host: str, port: int, insecure_no_auth: bool) -> Tokens:
    """The engine's tokens; refuses (``InvalidInput``) to expose an engine without one."""
    tokens = engine_tokens(engine)
    refuse_exposed(host, port, tokens, insecure_no_auth)
    return tokens


def warn_if_open(tokens: Tokens, host: str, port: int) -> None:
    if not tokens.configured and not is_loopback(host):
        logging.getLogger("caxton.engine.auth").warning(
            "INSECURE: serving %s:%s with no token (--insecure-no-auth): anyone who reaches it can drive every "
            "agent and read the memory", host, port)


class _Server(listeners.Server):
    """The API's server: announces where the API is once it listens; ends the event streams at shutdown."""

    def __init__(self, config: uvicorn.Config, *, url: str, data_dir: Path, announce: Callable[[str], None],
                 metrics_url: str | None = None, state: str | None = None,
                 before_shutdown: Callable[[], None] | None = None, drain_delay: float = 0.0) -> None:
        super().__init__(config, before_shutdown=before_shutdown, drain_delay=drain_delay)
        where = f"data dir {data_dir}" + (f", state in {state}" if state else "")  # state: a redacted URL
        self._announcement = f"caxton engine API at {url}/api/v1 ({where}); stop with SIGTERM or Ctrl-C"
        if metrics_url is not None:
            self._announcement += f"\ncaxton metrics at {metrics_url}/metrics"
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._announce(self._announcement)


def check_tls(tls: TLSSettings) -> None:
    """Load ``server.tls`` once before binding, so a missing or bad file is one clear error, not a traceback."""
    if tls.cert_file is None or tls.key_file is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    key = "server.tls.cert_file/key_file"
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            key = "server.tls.client_ca_file"
            context.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as error:
        raise InvalidInput(f"cannot load {key}: {error.strerror or error}",
                           hint="point server.tls (or CAXTON_TLS_CERT_FILE, CAXTON_TLS_KEY_FILE, "
                           "CAXTON_TLS_CLIENT_CA_FILE) to readable PEM files that belong together") from None


def _uvicorn_tls(tls: TLSSettings) -> dict[str, Any]:
    if not tls.enabled:
        return {}
    options: dict[str, Any] = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
    if tls.client_ca_file is not None:
        options.update(ssl_ca_certs=tls.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def _url(sock: socket.socket, scheme: str) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _recorder(received: list[int]) -> Callable[[int, FrameType | None], None]:
    """uvicorn restores this handler and re-raises the signal after its graceful shutdown."""

    def record(signum: int, _: FrameType | None) -> None:
        received.append(signum)

    return record

