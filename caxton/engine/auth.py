"""Who is calling the engine: named tokens, their roles, and the one table of what each route needs.

A token is either the static ``security.api_token`` (``CAXTON_API_TOKEN``:
one ``admin`` named "api-token") or an entry of the tokens file
(``security.tokens_file``), which holds per token its name, roles, optional
agent allow-list and expiry, and only a slow salted hash (scrypt) of the
token (its format: ``caxton.rules.tokens``, shared with ``caxton token``).
``Tokens.resolve`` runs that hash once per token per process: a
verified token is cached under a keyed BLAKE2b MAC of it (a random
per-process key), so later requests cost one MAC and a dict lookup.

``ROUTE_ROLES`` says, for every (method, path template) of the app, which
role a request needs (``OPEN`` for the probes, ``METRICS`` for ``/metrics``,
which follows ``observability.metrics_auth``). ``Policy.compile`` refuses an
app with a route missing from it. The request guard that applies all this
before a body is read is ``caxton.engine.guard``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from caxton.errors import CaxtonError, InvalidInput
from caxton.rules.tokens import (
    ADMIN,
    DEPLOY,
    MEMORY_READ,
    MEMORY_WRITE,
    MESSAGE,
    READ,
    ROLES,
    TOKEN_PATTERN,
    TokenEntry,
    check_hash,
    entries_of,
    new_token,
)
from caxton.spec.identity import agent_id

#: A role also grants these (admin grants every role).
IMPLIES: dict[str, frozenset[str]] = {
    DEPLOY: frozenset({READ}),
    MEMORY_WRITE: frozenset({MEMORY_READ}),
    ADMIN: frozenset(ROLES),
}
OPEN = "open"         # liveness/readiness probes: never need a token
METRICS = "metrics"   # /metrics: READ, or open when observability.metrics_auth is "none"
API_TOKEN_NAME = "api-token"

V1 = "/api/v1"
#: (method, path template) -> the role a request needs. Every route of the app has a row.
ROUTE_ROLES: dict[tuple[str, str], str] = {
    ("GET", V1 + "/health"): OPEN,
    ("GET", V1 + "/ready"): OPEN,
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): METRICS,
    ("GET", "/openapi.json"): READ,
    ("GET", V1 + "/health/detailed"): READ,
    ("GET", V1 + "/health/memory"): READ,
    ("GET", V1 + "/state"): READ,
    ("GET", V1 + "/agents"): READ,
    ("GET", V1 + "/agents/{name}"): READ,
    ("GET", V1 + "/agents/{name}/logs"): READ,
    ("GET", V1 + "/agents/{name}/revisions"): READ,
    ("GET", V1 + "/events"): READ,
    ("GET", V1 + "/events/stream"): READ,
    ("GET", V1 + "/lock"): READ,
    ("GET", V1 + "/applies"): READ,
    ("GET", V1 + "/applies/{apply_id}"): READ,
    ("GET", V1 + "/reconcile/status"): READ,
    ("GET", V1 + "/rollouts"): READ,
    ("GET", V1 + "/rollouts/{name}"): READ,
    ("GET", V1 + "/rollouts/{name}/series"): READ,
    ("POST", V1 + "/agents/{name}/messages"): MESSAGE,
    ("PUT", V1 + "/agents/{name}"): DEPLOY,
    ("POST", V1 + "/agents/{name}/suspend"): DEPLOY,
    ("POST", V1 + "/agents/{name}/resume"): DEPLOY,
    ("DELETE", V1 + "/agents/{name}"): DEPLOY,
    ("POST", V1 + "/agents/{name}/rollback"): DEPLOY,
    ("POST", V1 + "/lock"): DEPLOY,
    ("PUT", V1 + "/lock"): DEPLOY,
    ("DELETE", V1 + "/lock"): DEPLOY,  # ADMIN with ?force=true (see Policy.role_for)
    ("POST", V1 + "/applies"): DEPLOY,
    ("POST", V1 + "/reconcile/status"): DEPLOY,
    ("POST", V1 + "/reconcile"): DEPLOY,
    ("POST", V1 + "/rollouts/{name}/promote"): DEPLOY,
    ("POST", V1 + "/rollouts/{name}/abort"): DEPLOY,
    ("GET", V1 + "/memory/entities"): MEMORY_READ,
    ("GET", V1 + "/memory/entities/{entity_id}"): MEMORY_READ,
    ("GET", V1 + "/memory/entities/{entity_id}/neighbours"): MEMORY_READ,
    ("POST", V1 + "/memory/search"): MEMORY_READ,
    ("GET", V1 + "/memory/relations"): MEMORY_READ,
    ("GET", V1 + "/memory/stats"): MEMORY_READ,
    ("GET", V1 + "/memory/export"): MEMORY_READ,
    ("POST", V1 + "/memory/entities"): MEMORY_WRITE,
    ("POST", V1 + "/memory/entities/batch"): MEMORY_WRITE,
    ("PATCH", V1 + "/memory/entities/{entity_id}"): MEMORY_WRITE,
    ("POST", V1 + "/memory/relations"): MEMORY_WRITE,
    ("DELETE", V1 + "/memory/entities/{entity_id}"): ADMIN,
    ("DELETE", V1 + "/memory/relations/{relation_id}"): ADMIN,
    ("POST", V1 + "/memory/import"): ADMIN,
    ("POST", V1 + "/memory/vacuum"): ADMIN,
    ("POST", V1 + "/memory/reindex"): ADMIN,
    ("POST", V1 + "/backups"): ADMIN,
    ("GET", V1 + "/backups/{name}"): ADMIN,
    # The console (caxton.engine.http.ui): pages to read, the deploy role's forms; login and its assets open.
    ("GET", "/ui"): READ,
    ("GET", "/ui/agent"): READ,
    ("GET", "/ui/rollout"): READ,
    ("GET", "/ui/applies"): READ,
    ("GET", "/ui/memory"): MEMORY_READ,
    ("GET", "/ui/console.css"): OPEN,
    ("GET", "/ui/console.js"): OPEN,
    ("GET", "/ui/login"): OPEN,
    ("POST", "/ui/login"): OPEN,
    ("POST", "/ui/logout"): OPEN,
    ("POST", "/ui/rollout/promote"): DEPLOY,
    ("POST", "/ui/rollout/abort"): DEPLOY,
    ("POST", "/ui/agent/suspend"): DEPLOY,
    ("POST", "/ui/agent/resume"): DEPLOY,
}
#: A role any valid token has: what an unknown path (answered 404) needs.
ANY = "any"
FORCE_RELEASE = ("DELETE", V1 + "/lock")

#: Failed tokens remembered (so a flood of one wrong token costs one scrypt).
FAILED_CACHE = 1024
#: Route rules remembered by ``Policy.match``: at most this many paths, each at most this long.
MATCH_CACHE = 1024
MATCH_CACHE_PATH = 256


@dataclass(frozen=True)
class Principal:
    """A verified caller: the token's name, its roles, and the agents it may message (``None``: any)."""

    name: str
    roles: frozenset[str]
    agents: frozenset[str] | None = None
    #: ``roles`` with what they imply (admin: every role), and ``ANY``.
    granted: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        implied = {role for mine in self.roles for role in IMPLIES.get(mine, ())}
        object.__setattr__(self, "granted", frozenset({ANY, *self.roles, *implied}))

    def has(self, role: str) -> bool:
        return role in self.granted

    def may_message(self, agent: str) -> bool:
        return self.agents is None or agent_id(agent) in self.agents


class TokenRefused(CaxtonError):
    """Why a presented token was not accepted (the guard answers 401)."""

    code = "unauthorized"
    http_status = 401


@dataclass
class Tokens:
    """The engine's tokens; ``resolve`` maps a presented token to its ``Principal``."""

    entries: list[TokenEntry] = field(default_factory=list)
    api_token: str | None = None
    clock: Callable[[], float] = time.time
    #: Tokens made in-process (``caxton up``'s own reconcile loop), kept across reloads.
    internal: list[tuple[str, Principal]] = field(default_factory=list)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _verified: dict[bytes, tuple[Principal, float | None]] = field(default_factory=dict, repr=False)
    _failed: OrderedDict[bytes, str] = field(default_factory=OrderedDict, repr=False)
    #: At most this many scrypt runs at once (16 MiB each): a flood of new tokens queues, memory stays flat.
    _slow: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(2), repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.entries or self.api_token)

    def cached(self, token: str) -> Principal | None:
        """The principal of an already-verified token (fast), else ``None``; raises for a known-bad one."""
        digest = self._digest(token)
        hit = self._verified.get(digest)
        if hit is not None:
            return self._unexpired(*hit)
        reason = self._failed.get(digest)
        if reason is not None:
            raise _refused(reason)
        return None

    def _digest(self, token: str) -> bytes:
        """The cache key of ``token``: keyed BLAKE2b (a MAC under a per-process key; ~3x cheaper per
        request than OpenSSL's HMAC-SHA256 here), so the cache never holds a token itself."""
        return hashlib.blake2b(token.encode(), key=self._key, digest_size=32).digest()

    def resolve(self, token: str) -> Principal:
        """Verify ``token`` (slow the first time: scrypt), remember the outcome; raises ``TokenRefused``."""
        found = self.cached(token)
        if found is not None:
            return found
        digest = self._digest(token)
        with self._slow:
            verified = self._verify(token)
        if verified is None:
            self._failed[digest] = "the token is not valid for this engine"
            while len(self._failed) > FAILED_CACHE:
                self._failed.popitem(last=False)
            raise _refused(self._failed[digest])
        self._verified[digest] = verified
        return self._unexpired(*verified)

    def _verify(self, token: str) -> tuple[Principal, float | None] | None:
        if self.api_token and hmac.compare_digest(token.encode(), self.api_token.encode()):
            return Principal(API_TOKEN_NAME, frozenset({ADMIN})), None
        for known, principal in self.internal:
            if hmac.compare_digest(token.encode(), known.encode()):
                return principal, None
        match = TOKEN_PATTERN.match(token)
        candidates = [e for e in self.entries if e.id == (match.group(1) if match else None)]
        for entry in candidates:
            if check_hash(token, entry.hash):
                return Principal(entry.name, entry.roles, entry.agents), entry.expires
        return None

    def _unexpired(self, principal: Principal, expires: float | None) -> Principal:
        if expires is not None and self.clock() >= expires:
            when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
            raise _refused(f"token {principal.name!r} expired at {when}",
                           hint="create a new one with `caxton token create` and update the tokens file")
        return principal


    def issue_internal(self, name: str) -> str:
        """A new in-process admin token named ``name`` (never written anywhere)."""
        token = new_token()[0]
        self.internal.append((token, Principal(name, frozenset({ADMIN}))))
        return token


def _refused(message: str, hint: str | None = None) -> TokenRefused:
    return TokenRefused(message, hint=hint or "send a valid token: Authorization: Bearer <token> "
                        "(the CLI's --token or CAXTON_API_TOKEN)")


# --- the tokens file -------------------------------------------------------------------------------


def load_tokens(path: Path | None, api_token: str | None) -> Tokens:
    """The tokens of ``path`` (a tokens file) plus the static API token; raises ``InvalidInput``."""
    entries = read_tokens_file(path) if path is not None else []
    names = [entry.name for entry in entries]
    if api_token and API_TOKEN_NAME in names:
        raise InvalidInput(f"{path}: the name {API_TOKEN_NAME!r} is taken by security.api_token",
                           hint="rename that entry of the tokens file")
    return Tokens(entries, api_token or None)


def read_tokens_file(path: Path) -> list[TokenEntry]:
    """The entries of the tokens file at ``path`` (format: ``caxton.rules.tokens``); raises ``InvalidInput``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read the tokens file {path}: {error}",
                           hint="check security.tokens_file (CAXTON_TOKENS_FILE)") from None
    return entries_of(text, path)


# --- which role a route needs ----------------------------------------------------------------------


@dataclass(frozen=True)
class RouteRule:
    pattern: re.Pattern[str]
    role: str
    template: str
    method: str


@dataclass
class Policy:
    """The compiled ``ROUTE_ROLES`` of an app: ``role_for(method, path, query)``."""

    rules: dict[tuple[str, str], list[RouteRule]]
    metrics_open: bool
    #: (method, path) -> its rule, for short paths (the same few paths carry nearly every request).
    _seen: dict[tuple[str, str], RouteRule | None] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def compile(cls, routes: Iterable[Any], *, metrics_open: bool,
                table: Mapping[tuple[str, str], str] = ROUTE_ROLES) -> Policy:
        """Rules for every route of ``routes`` (starlette routes); one missing from ``table`` is an error."""
        rules: dict[tuple[str, str], list[RouteRule]] = {}
        for route in routes:
            for method in sorted(getattr(route, "methods", None) or ()):
                looked_up = "GET" if method == "HEAD" else method
                role = table.get((looked_up, route.path))
                if role is None:
                    raise RuntimeError(f"route {method} {route.path} has no entry in caxton.engine.auth.ROUTE_ROLES")
                if "{" in _bucket(route.path):
                    raise RuntimeError(f"route {route.path}: a parameter in the first three segments")
                rule = RouteRule(route.path_regex, role, route.path, looked_up)
                rules.setdefault((method, _bucket(route.path)), []).append(rule)
        return cls(rules, metrics_open)

    def match(self, method: str, path: str) -> RouteRule | None:
        key = (method, path)
        try:
            return self._seen[key]
        except KeyError:
            pass
        found = next((rule for rule in self.rules.get((method, _bucket(path)), ()) if rule.pattern.match(path)), None)
        if len(path) <= MATCH_CACHE_PATH:
            if len(self._seen) >= MATCH_CACHE:
                self._seen.clear()
            self._seen[key] = found
        return found

    def role_for(self, rule: RouteRule | None, query: str) -> str:
        if rule is None:
            return ANY
        if rule.role == METRICS:
            return OPEN if self.metrics_open else READ
        if (rule.method, rule.template) == FORCE_RELEASE and re.search(r"(^|&)force=(true|1|yes|on)(&|$)",
                                                                       query, re.IGNORECASE):
            return ADMIN
        return rule.role


def _bucket(path: str) -> str:
    """The first three segments of a path (``/api/v1/agents``): the rules a path can match."""
    return "/".join(path.split("/", 4)[:4])


def attributed(principal: Principal | None, claimed: str | None) -> str | None:
    """The actor recorded for a change: the token's name (with what the client claimed, if different)."""
    if principal is None:
        return claimed
    if not claimed or claimed == principal.name:
        return principal.name
    return f"{principal.name} ({claimed})"


def principal_of(request: Any) -> Principal | None:
    """The caller of a starlette ``Request`` (set by ``caxton.engine.guard.Guard``)."""
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else None


# --- where a token is required -----------------------------------------------------------------------

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "ip6-localhost"})
WILDCARDS = frozenset({"0.0.0.0", "::", "", "*"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_exposed(host: str, port: int, tokens: Tokens, insecure_no_auth: bool) -> None:
    """Refuse to serve a non-loopback address without a token, unless told ``--insecure-no-auth``."""
    if tokens.configured or is_loopback(host) or insecure_no_auth:
        return
    raise InvalidInput(f"refusing to serve {host}:{port} without a token: set security.tokens_file or "
                       "CAXTON_API_TOKEN, or pass --insecure-no-auth",
                       hint="anyone who reaches that address could drive every agent and read the memory; make a "
                       "token with `caxton token create NAME --role admin --file tokens.yaml` and point "
                       "CAXTON_TOKENS_FILE (or security.tokens_file) at that file (docs/security.md)")
