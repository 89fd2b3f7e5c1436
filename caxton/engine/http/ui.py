"""The web console at ``/ui``: server-rendered pages over the ``Engine`` facade, on the API's port.

Pages (GET, the ``read`` role; readable without JavaScript): ``/ui`` (the
overview), ``/ui/agent?name=``, ``/ui/rollout?name=``, ``/ui/applies`` and
``/ui/memory?scope=&q=`` (``memory-read`` instead). Their data comes
from ``caxton.engine.ui.pages``, their markup from the Jinja2 templates in
``caxton/engine/ui/templates`` and one stylesheet and one script shipped
beside them (``/ui/console.css``, ``/ui/console.js``: no build step, nothing
fetched from elsewhere). The script follows the engine's event stream
(``GET /api/v1/events/stream``, one agent's frames on its pages; an engine
without it: the page is re-read every few seconds) and, on each frame, swaps
in the new markup of the parts marked ``data-live``.

Auth is the API's (``caxton.engine.guard``): with tokens configured,
``/ui/login`` takes a pasted token and opens a session
(``caxton.engine.sessions``: the browser holds only an opaque id in an
HttpOnly, SameSite=Strict cookie, Secure under TLS); ``/ui/logout`` closes
it. Without tokens (loopback dev) the console is open, like the API, and a
session is opened on the first page for the forms' CSRF token. The only
mutations are the ``deploy`` role's POST forms (promote, abort, suspend,
resume), each checked for the session's CSRF token (not needed with a bearer
token), calling the same ``Engine`` operations as the API. Mounted by ``caxton.engine.http.app``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from caxton import __version__
from caxton.engine.auth import TokenRefused, attributed, principal_of
from caxton.engine.core import Engine
from caxton.engine.guard import Gate
from caxton.engine.http.deps import engine_of
from caxton.engine.sessions import COOKIE, MAX_TTL, Session
from caxton.engine.state.records import Source
from caxton.engine.ui import pages
from caxton.errors import CaxtonError, Forbidden, InvalidInput
from caxton.rules.tokens import DEPLOY, MEMORY_READ

UI = "/ui"
STREAM = "/api/v1/events/stream"
ASSETS = Path(pages.__file__).parent
#: The console's stylesheet and script: (file, media type).
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
#: Every page: no external request, nothing framed, no inline script.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
}
#: Seconds between two re-reads of a page when the engine has no event stream.
POLL_MS = 2000
FORM = "application/x-www-form-urlencoded"
MAX_FORM = 64 * 1024


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ASSETS / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["short"] = lambda value, n=10: (value or "")[:n] or "-"
    env.filters["pct"] = lambda traffic: ", ".join(f"r{rev}: {weight} %" for rev, weight in
                                                   sorted((traffic or {}).items())) or "-"
    env.filters["q"] = lambda value: quote(str(value), safe="")
    return env


@functools.cache
def _static(name: str) -> bytes:
    return (ASSETS / "static" / name).read_bytes()


def routes(app: FastAPI) -> APIRouter:
    """The console's routes (kept out of the OpenAPI document: they answer HTML)."""
    router = APIRouter(include_in_schema=False)
    app.state.console_stream = any(getattr(route, "path", None) == STREAM for route in app.routes)

    @router.get(UI)
    def overview(request: Request) -> Response:
        board = request.app.state.reconcile_board.view()
        return _guarded(request, "overview.html", lambda: pages.overview(engine_of(request), board))

    @router.get(UI + "/agent")
    def agent(request: Request, name: str = "") -> Response:
        return _guarded(request, "agent.html", lambda: pages.agent(engine_of(request), _named(name)))

    @router.get(UI + "/rollout")
    def rollout(request: Request, name: str = "") -> Response:
        return _guarded(request, "rollout.html", lambda: pages.rollout(engine_of(request), _named(name)))

    @router.get(UI + "/applies")
    def applies(request: Request) -> Response:
        return _guarded(request, "applies.html", lambda: pages.applies(engine_of(request)))

    @router.get(UI + "/memory")
    def memory(request: Request, scope: str = "", q: str = "") -> Response:
        return _guarded(request, "memory.html",
                        lambda: pages.memory(engine_of(request), scope or None, q.strip() or None))

    for name, media in STATIC.items():
        router.add_api_route(f"{UI}/{name}", _asset(name, media), methods=["GET"])

    _session_routes(router)
    _action_routes(router)
    return router


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """``template`` rendered with ``context`` and what every page shows (who, what they may do, the stream)."""
    session = _session_for(request)
    principal = principal_of(request)
    gate: Gate = request.app.state.gate
    open_engine = not gate.tokens.configured
    stream = _stream_of(request) if request.app.state.console_stream else ""
    body = _templates().get_template(template).render(
        **context, version=__version__, principal=principal, open_engine=open_engine,
        can_deploy=open_engine or (principal is not None and principal.has(DEPLOY)),
        can_memory=engine_of(request).config.memory.enabled and (
            open_engine or (principal is not None and principal.has(MEMORY_READ))),
        csrf=session.csrf if session else "", stream=stream, poll_ms=POLL_MS,
        path=request.url.path, here=_here(request), notice=request.query_params.get("notice", ""))
    response = HTMLResponse(body, status_code=status, headers=HEADERS)
    if session is not None and request.scope["state"].get("session") is None:
        _set_cookie(response, request, session)
    return response


def _stream_of(request: Request) -> str:
    """The event stream the page follows: one agent's frames on its pages, every frame elsewhere."""
    name = request.query_params.get("name", "").strip()
    if name and request.url.path in (UI + "/agent", UI + "/rollout"):
        return f"{STREAM}?agent={quote(name, safe='')}"
    return STREAM


def _guarded(request: Request, template: str, build: Callable[[], dict[str, Any]]) -> Response:
    """The page, or the error page of the ``CaxtonError`` that ``build`` raised (with its status).

    ``Server-Timing: render;dur=MS`` says how long reading the engine and rendering took
    (``benchmarks/console_bench.py`` reads it).
    """
    began = time.perf_counter()
    try:
        response = _page(request, template, build())
    except CaxtonError as error:
        response = _page(request, "error.html", {"error": error}, error.http_status)
    response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - began) * 1000:.1f}"
    return response


def _asset(name: str, media: str) -> Any:
    async def asset() -> Response:
        return Response(_static(name), media_type=media,
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    return asset


def _session_routes(router: APIRouter) -> None:
    @router.get(UI + "/login")
    def login_form(request: Request, next: str = UI) -> Response:
        return _page(request, "login.html", {"next": _local(next), "error": None})

    @router.post(UI + "/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        gate: Gate = request.app.state.gate
        wanted = _local(form.get("next", UI))
        if not gate.tokens.configured:
            return _redirect(wanted)
        token = form.get("token", "").strip()
        try:
            if not token:
                raise TokenRefused("paste a token", hint="an engine token: `caxton token create NAME --role read`")
            await run_in_threadpool(gate.tokens.resolve, token)
        except TokenRefused as error:
            return _page(request, "login.html", {"next": wanted, "error": error}, 401)
        gate.sessions.close(_cookie(request))
        response = _redirect(wanted)
        _set_cookie(response, request, gate.sessions.open(token))
        return response

    @router.post(UI + "/logout")
    async def logout(request: Request) -> Response:
        form = await _form(request)
        gate: Gate = request.app.state.gate
        session = gate.sessions.get(_cookie(request))
        if session is not None and not session.csrf_ok(form.get("csrf")):
            return _page(request, "error.html", {"error": _bad_csrf()}, 403)
        gate.sessions.close(_cookie(request))
        response = _redirect(UI + "/login" if gate.tokens.configured else UI)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
        return response


def _action_routes(router: APIRouter) -> None:
    """The deploy role's buttons: the same ``Engine`` operations as the API's routes."""

    def action(work: Any, done: str) -> Any:
        async def run(request: Request) -> Response:
            form = await _form(request)
            session: Session | None = request.scope["state"].get("session")
            try:
                if _needs_csrf(request) and (session is None or not session.csrf_ok(form.get("csrf"))):
                    raise _bad_csrf()
                name = _named(form.get("name", ""))
                source = Source(actor=attributed(principal_of(request), None) or "console")
                await run_in_threadpool(work, engine_of(request), name, source)
            except CaxtonError as error:
                return _page(request, "error.html", {"error": error}, error.http_status)
            back = _local(form.get("back", f"{UI}/agent?name={quote(name)}"))
            return _redirect(back + ("&" if "?" in back else "?") + "notice=" + quote(done.format(name=name)))

        return run

    router.add_api_route(UI + "/rollout/promote", action(Engine.promote, "promoted {name}"), methods=["POST"])
    router.add_api_route(UI + "/rollout/abort", action(Engine.abort, "aborted the rollout of {name}"),
                         methods=["POST"])
    router.add_api_route(UI + "/agent/suspend", action(Engine.suspend, "suspended {name}"), methods=["POST"])
    router.add_api_route(UI + "/agent/resume", action(Engine.resume, "resumed {name}"), methods=["POST"])


def _session_for(request: Request) -> Session | None:
    """The request's session; on an open engine (no tokens), a new one for the forms' CSRF token."""
    session: Session | None = request.scope["state"].get("session")
    gate: Gate = request.app.state.gate
    if session is None and not gate.tokens.configured:
        session = gate.sessions.open(None)
    return session


def _set_cookie(response: Response, request: Request, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, max_age=int(MAX_TTL), path="/", httponly=True, samesite="strict",
                        secure=_secure(request))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _cookie(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


async def _form(request: Request) -> dict[str, str]:
    """A form-encoded body as a dict (the last value of a repeated field); any other body is an empty form."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await request.body()
    if media != FORM or len(body) > MAX_FORM:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _needs_csrf(request: Request) -> bool:
    """A form needs the session's CSRF token unless its caller sent a bearer token (no browser sends one
    by itself; the guard has checked it)."""
    gate: Gate = request.app.state.gate
    return not (gate.tokens.configured and "authorization" in request.headers)


def _bad_csrf() -> Forbidden:
    return Forbidden("the form's CSRF token is missing or stale", hint="reload the page and submit it again")


def _named(name: str) -> str:
    if not name.strip():
        raise InvalidInput("which agent? the page needs ?name=AGENT", hint="pick one on the overview: /ui")
    return name.strip()


def _local(target: str) -> str:
    """``target`` if it is a console path on this engine, else the overview (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == UI or parts.path.startswith(UI + "/")) or "\\" in target:
        return UI
    return target


def _here(request: Request) -> str:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in request.query_params.items() if k != "notice")
    return request.url.path + (f"?{query}" if query else "")


def _redirect(target: str) -> Response:
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
