"""The transport under every client module: ``EngineClient``, the engine's ``/api/v1`` over httpx.

``EngineClient.call`` sends one request and parses the answer into its
``caxton.spec.api`` model; the resource modules beside this one
(``status``, ``agents``, ``lock``, ``applies``, ``rollouts``, ``memory``,
``backups``, ``reconcile``) are functions ``verb(client, ...)`` built on it.

The base URL is normalised (``caxton.client.urls``: a trailing ``/api/v1``
dropped, ``127.0.0.1:8080`` given http://, garbage refused). An unreachable
engine raises ``EngineUnreachable`` with one line saying
where it looked and how to point elsewhere; an error answer raises the
``CaxtonError`` subclass named by the body's ``error.code`` (``NotFound``,
``Unauthorized``, ``IllegalTransition``...), carrying the engine's message
and hint. TLS (CA, client certificate) and the refusal of plain http to
another machine come from ``caxton.client.tls``.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Any, Self, TypeVar
from urllib.parse import quote

# httpx imports its own command line (click, rich, pygments: ~150 ms) whenever those are installed,
# as they are with typer; caxton never uses it. None in sys.modules makes that one import fail
# fast, and httpx falls back to a stub ``httpx.main``.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx
import pydantic

from caxton import errors
from caxton.client import urls
from caxton.client.tls import TLSOptions, explain

DEFAULT_ENGINE_URL = "http://127.0.0.1:8080"
API = "/api/v1"
M = TypeVar("M", bound=pydantic.BaseModel)


def _error_classes() -> dict[str, type[errors.CaxtonError]]:
    found: dict[str, type[errors.CaxtonError]] = {}
    pending: list[type[errors.CaxtonError]] = [errors.CaxtonError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def error_from_response(response: httpx.Response) -> errors.CaxtonError:
    """The ``CaxtonError`` an engine error response stands for."""
    try:
        body = response.json().get("error") or {}
    except (ValueError, AttributeError):
        body = {}
    message = str(body.get("message") or f"the engine answered HTTP {response.status_code}")
    hint, details = body.get("hint"), body.get("details")
    cls = _error_classes().get(str(body.get("code")), errors.EngineError)
    try:
        error = cls(message, hint=hint, details=details)
    except TypeError:
        error = errors.EngineError(message, hint=hint, details=details)
    if type(error) in (errors.CaxtonError, errors.EngineError):
        error.code = str(body.get("code") or "engine_error")
    return error


class EngineClient:
    """A client of one engine. Use as a context manager, or call ``close``."""

    def __init__(
        self, base_url: str = DEFAULT_ENGINE_URL, *, token: str | None = None, timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None, tls: TLSOptions | None = None,
    ) -> None:
        self.base_url = urls.normalise(base_url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = (tls or TLSOptions.from_env()).verify(self.base_url)  # refuses http:// to another machine
        if transport is None:
            # Without TCP_NODELAY, a request body written after its headers waits for a
            # delayed ACK (~40 ms per POST on Linux).
            transport = httpx.HTTPTransport(verify=verify,
                                            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- transport ----------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v1{path}`` (or an absolute path) and return the decoded JSON body."""
        url = path if path.startswith("/metrics") else API + path
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def download(self, path: str, target: Path) -> int:
        """Stream ``/api/v1{path}`` into ``target`` (written beside it, renamed when complete); return its size."""
        partial = target.with_name(f".{target.name}.part")
        size = 0
        try:
            with self._http.stream("GET", API + path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
            os.replace(partial, target)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        finally:
            partial.unlink(missing_ok=True)
        return size

    def lines(self, path: str, *, params: dict[str, str | float] | None = None,
              headers: dict[str, str] | None = None) -> Iterator[str]:
        """The lines of a streamed ``GET /api/v1{path}`` as they arrive (an event stream); ends with the body."""
        try:
            with self._http.stream("GET", API + path, params=params, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                yield from response.iter_lines()
        except httpx.TransportError as error:
            raise self._unreachable(error) from None

    def _unreachable(self, error: httpx.TransportError) -> errors.CaxtonError:
        if isinstance(error, httpx.TimeoutException):
            return errors.EngineUnreachable(
                f"the engine at {self.base_url} did not answer in time ({type(error).__name__}); "
                "is it overloaded? retry, or raise the client timeout"
            )
        disconnected = isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError))
        tls_failure = explain(error, self.base_url, disconnected=disconnected)
        if tls_failure is not None:
            return tls_failure
        return errors.EngineUnreachable(
            f"cannot reach the engine at {self.base_url}: {error or type(error).__name__}; "
            "is `caxton server start` running? set --engine or CAXTON_ENGINE_URL"
        )

    def call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """Call ``/api/v1{path}`` and parse the answer into ``model`` (``caxton.spec.api``)."""
        return parse(model, self.request(method, path, **kwargs), f"{method} {API}{path}")


def parse(model: type[M], body: object, where: str) -> M:
    """``body`` as ``model``; an answer that does not fit is an ``EngineError`` naming the first problem."""
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        raise errors.EngineError(
            f"the engine's answer to {where} does not fit the API contract: {loc}: {first['msg']}",
            hint="is the engine the same version as this CLI? (`caxton health --detailed` shows its version)",
        ) from None


def build(model: type[M], **values: object) -> M:
    """A request body, checked here as the engine would (``InvalidInput`` naming the first problem)."""
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        raise errors.InvalidInput(f"invalid request: {loc}: {first['msg']}",
                                  hint="see /openapi.json for the request shape") from None


def segment(name: str) -> str:
    """An agent name as one URL path segment; a name that cannot be one is ``InvalidInput``."""
    if not name or "/" in name:
        raise errors.InvalidInput(f"{name!r} is not an agent name", hint="agent names are like data-processor")
    return quote(name, safe="")


def actor() -> str:
    """Who is acting, for the engine's records (the lock's holder, a rollout's promoter): user@host pid N."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"
