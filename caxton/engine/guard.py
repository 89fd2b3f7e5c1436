"""The request guard: the outermost ASGI middleware of the engine app, run before any body is read.

In order, for every HTTP request: a foreign ``Host`` (DNS rebinding) or
``Origin`` (a web page driving a local engine) is refused with 403; a token
in the query string with 401; then, when any token is configured, the
``Authorization: Bearer`` token is resolved to a ``Principal``
(``caxton.engine.auth.Tokens``; 401 when missing, malformed or wrong) and
checked against the role the route needs (``caxton.engine.auth.ROUTE_ROLES``;
403 naming it). Without that header, the console's session cookie
(``caxton.engine.sessions``) stands for its token on the console's own
routes (``/ui``) and on reads (GET): never on the API's state-changing routes,
which have no CSRF token. A console page asked without a valid session is
redirected to ``/ui/login``. A state-changing request with a body must be JSON
(415; the console's forms, checked for their CSRF token by
``caxton.engine.http.ui``, may be form-encoded), and one without a body that
carries an ``Origin`` needs a token (403). The principal (``None`` when no
token is configured) is stored as ``scope["state"]["principal"]``, i.e.
``request.state.principal``, and the console session (or ``None``) as
``scope["state"]["session"]``.
``reload_tokens`` (an ``Engine.on_reload`` hook: SIGHUP) swaps the tokens.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caxton.engine.sessions import Session, Sessions, cookie_value
from caxton.engine.auth import (
    load_tokens,
    OPEN,
    Policy,
    Principal,
    Tokens,
    TokenRefused,
    WILDCARDS,
    is_loopback,
)
from caxton.errors import CaxtonError, Forbidden, UnsupportedMediaType
from caxton.rules.tokens import MESSAGE
from caxton.spec.project import ProjectConfig

log = logging.getLogger("caxton.engine.auth")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPES = frozenset({"application/json", "application/x-ndjson"})
#: The console's routes (``caxton.engine.http.ui``): a session cookie counts there, and its forms post there.
CONSOLE = "/ui"
FORM_TYPES = JSON_TYPES | {"application/x-www-form-urlencoded"}
READS = frozenset({"GET", "HEAD"})
#: Query parameters that would carry an API token (refused: URLs end up in logs and histories).
TOKEN_PARAMS = frozenset({"access_token", "api_token", "auth_token", "authorization", "bearer"})
LEASE_ROUTE = ("DELETE", "/api/v1/lock")  # its ``token`` parameter is the lock's lease token
B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
BEARER_HINT = "send Authorization: Bearer <token> (the CLI's --token or CAXTON_API_TOKEN)"


@dataclass
class Gate:
    """What the guard checks against; ``tokens`` is swapped whole on reload."""

    tokens: Tokens
    policy: Policy | None
    hosts: frozenset[str]
    any_ip: bool
    #: The console's browser sessions (``caxton.engine.sessions``), kept across token reloads.
    sessions: Sessions = field(default_factory=Sessions)

    @classmethod
    def for_host(cls, tokens: Tokens, bound: str, extra_hosts: list[str]) -> Gate:
        names = {name.lower() for name in extra_hosts} | {"localhost", "127.0.0.1", "::1"}
        wildcard = bound in WILDCARDS
        if not wildcard:
            names.add(bound.lower().strip("[]"))
        else:
            import socket

            names.add(socket.gethostname().lower())
        return cls(tokens, None, frozenset(names), wildcard)

    def host_allowed(self, host: str) -> bool:
        host = host.lower()
        if host in self.hosts or is_loopback(host):
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(host)
                return True
            except ValueError:
                return False
        return False


def reload_tokens(gate: Gate, config: ProjectConfig) -> None:
    """``Engine.on_reload`` hook: re-read the tokens file; a bad one keeps the old tokens (logged, with why)."""
    security = config.security
    try:
        fresh = load_tokens(Path(security.tokens_file) if security.tokens_file else None, security.api_token)
    except CaxtonError as error:
        log.error("reload: kept the old tokens: %s", error.message)
        return
    if gate.tokens.configured and not fresh.configured:
        log.error("reload: kept the old tokens: the new settings have none, which would open every route "
                  "(restart the engine to serve without tokens)")
        return
    fresh.internal = list(gate.tokens.internal)
    gate.tokens = fresh
    log.info("reload: %d token(s) from %s%s", len(fresh.entries), security.tokens_file or "no tokens file",
             " and security.api_token" if fresh.api_token else "")


class Guard:
    """ASGI middleware applying ``Gate`` to every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._check(scope)
        except CaxtonError as error:
            if isinstance(error, TokenRefused) and _console_page(scope):
                await _to_login(send, scope)
            else:
                await _reply(send, error)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope) -> Principal | None:
        gate = self.gate
        headers = _headers(scope)
        host = headers.get("host")
        if host is not None and not gate.host_allowed(_hostname(host)):
            raise Forbidden(f"Host {host!r} is not this engine's address",
                            hint="connect to the engine by the address it listens on (or add the name to "
                                 "security.allowed_hosts); a foreign Host is how DNS rebinding reaches a local engine")
        origin = headers.get("origin")
        if origin is not None and not self._same_origin(origin, host, scope):
            raise Forbidden(f"cross-origin request from {origin!r} refused",
                            hint="the engine's API is not for web pages of other origins; use the CLI or an HTTP "
                                 "client that sends no Origin header")
        method, path = scope["method"], scope["path"]
        policy = gate.policy
        assert policy is not None, "Gate.policy is compiled by create_app"
        rule = policy.match(method, path)
        _refuse_query_token(scope, rule is not None and (rule.method, rule.template) == LEASE_ROUTE, gate.tokens)
        role = policy.role_for(rule, scope.get("query_string", b"").decode("latin-1"))
        principal: Principal | None = None
        session = self._session(scope, headers, method, path)
        scope.setdefault("state", {})["session"] = session
        if gate.tokens.configured and role != OPEN:
            if session is not None and session.token is not None and "authorization" not in headers:
                principal = await self._session_principal(session)
            else:
                token = _bearer(headers.get("authorization"))
                principal = gate.tokens.cached(token)
                if principal is None:
                    principal = await anyio.to_thread.run_sync(gate.tokens.resolve, token)  # scrypt, once per token
            if not principal.has(role):
                raise Forbidden(f"this endpoint needs the {role!r} role; token {principal.name!r} has "
                                f"{', '.join(sorted(principal.roles))}",
                                hint=f"use a token with the {role!r} role (`caxton token create NAME --role {role}`)")
            if role == MESSAGE and rule is not None and principal.agents is not None:
                found = rule.pattern.match(path)
                agent = found.group("name") if found else ""
                if not principal.may_message(agent):
                    raise Forbidden(f"token {principal.name!r} may not message agent {agent!r}",
                                    hint="its allow-list: " + ", ".join(sorted(principal.agents)))
        if method in STATE_CHANGING:
            _check_body(headers, principal, origin, FORM_TYPES if _on_console(path) else JSON_TYPES)
        return principal

    def _session(self, scope: Scope, headers: dict[str, str], method: str, path: str) -> Session | None:
        """The console session of the request's cookie, where a cookie counts (the console, reads)."""
        if method not in READS and not _on_console(path):
            return None
        return self.gate.sessions.get(cookie_value(headers.get("cookie")))

    async def _session_principal(self, session: Session) -> Principal:
        """The session's token resolved now: a token revoked (reload) or expired ends the session."""
        assert session.token is not None
        tokens = self.gate.tokens
        try:
            found = tokens.cached(session.token)
            return found if found is not None else await anyio.to_thread.run_sync(tokens.resolve, session.token)
        except TokenRefused:
            self.gate.sessions.close(session.id)
            raise

    def _same_origin(self, origin: str, host: str | None, scope: Scope) -> bool:
        try:
            parts = urlsplit(origin)
            origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if not self.gate.host_allowed(parts.hostname):
            return False
        return origin_port == _port(host, scope)


def _bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; ``TokenRefused`` for anything else."""
    if header is None:
        raise TokenRefused("this endpoint needs a token", hint=BEARER_HINT)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise TokenRefused(f"the Authorization header uses the {scheme[:20]!r} scheme; the engine takes Bearer tokens",
                           hint=BEARER_HINT)
    if not token or not B64TOKEN.match(token):
        raise TokenRefused("the Authorization header is malformed: expected 'Bearer <token>'", hint=BEARER_HINT)
    return token


def _refuse_query_token(scope: Scope, lease_route: bool, tokens: Tokens) -> None:
    query = scope.get("query_string", b"")
    if not query:
        return
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        looks_like_token = value.startswith("cxt_") or (tokens.api_token is not None and value == tokens.api_token)
        if key.lower() in TOKEN_PARAMS or (key.lower() == "token" and (not lease_route or looks_like_token)):
            raise TokenRefused(f"a token in the query string ({key}=...) is refused: URLs end up in logs and histories",
                               hint=BEARER_HINT)


def _on_console(path: str) -> bool:
    return path == CONSOLE or path.startswith(CONSOLE + "/")


def _console_page(scope: Scope) -> bool:
    return scope["method"] in READS and _on_console(scope["path"])


def _check_body(headers: dict[str, str], principal: Principal | None, origin: str | None,
                accepted: frozenset[str] = JSON_TYPES) -> None:
    length = headers.get("content-length")
    has_body = "transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))
    if has_body:
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in accepted:
            raise UnsupportedMediaType(f"a state-changing request must be JSON, not {media or 'untyped'}",
                                       hint="send Content-Type: application/json")
    elif origin is not None and principal is None:
        raise Forbidden("a state-changing request from a web page needs a token",
                        hint="send it without an Origin header (CLI) or with Authorization: Bearer <token>")


_WANTED = {name: name.decode() for name in (b"host", b"origin", b"authorization", b"content-type",
                                            b"content-length", b"transfer-encoding", b"cookie")}


def _headers(scope: Scope) -> dict[str, str]:
    return {_WANTED[key]: value.decode("latin-1") for key, value in scope["headers"] if key in _WANTED}


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _port(host: str | None, scope: Scope) -> int | None:
    if host is not None:
        tail = host.rpartition("]")[2] if host.startswith("[") else host
        if tail.count(":") == 1 and tail.rpartition(":")[2].isdigit():
            return int(tail.rpartition(":")[2])
        return 443 if scope.get("scheme") == "https" else 80
    server: Any = scope.get("server")
    return int(server[1]) if server else None


async def _reply(send: Send, error: CaxtonError) -> None:
    body = {"error": {"code": error.code, "message": error.message, "hint": error.hint}}
    headers = [(b"content-type", b"application/json")]
    if error.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    payload = json.dumps(body).encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    # Close the connection: the unread body of a refused request must not be taken as the next request.
    headers.append((b"connection", b"close"))
    start: Message = {"type": "http.response.start", "status": error.http_status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": payload})


async def _to_login(send: Send, scope: Scope) -> None:
    """303 to the console's login page, back to the page asked for after it."""
    from urllib.parse import quote

    query = scope.get("query_string", b"").decode("latin-1")
    wanted = scope["path"] + (f"?{query}" if query else "")
    location = f"{CONSOLE}/login?next={quote(wanted, safe='')}"
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
