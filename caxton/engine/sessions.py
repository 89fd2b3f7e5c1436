"""The console's browser sessions: an opaque id in an HttpOnly cookie, the token it stands for kept here.

``/ui/login`` (``caxton.engine.http.ui``) takes a pasted token, checks it and
calls ``Sessions.open``; the browser gets only a random session id
(``caxton_session``: HttpOnly, SameSite=Strict, Secure under TLS). The token
stays in this process's memory, never in the browser: a stolen cookie dies
at logout, restart or expiry, and the guard (``caxton.engine.guard``)
resolves the session's token again on every request, so a token removed
from the tokens file (SIGHUP) or expired ends its sessions too. Without
configured tokens (loopback dev) a session has no token and carries only
its CSRF secret. Every session has a CSRF token for the console's forms.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "caxton_session"
#: A session ends this long after its last request, and in any case this long after login.
IDLE_TTL = 8 * 3600.0
MAX_TTL = 24 * 3600.0
#: Sessions kept at most (the oldest go first): a login flood cannot grow memory without bound.
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    token: str | None
    csrf: str
    opened: float
    seen: float

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """The open sessions of one engine process (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._open: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, token: str | None) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._open[session.id] = session
            while len(self._open) > MAX_SESSIONS:
                self._open.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session ``session_id`` (its idle clock restarted), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            found = self._open.get(session_id)
            if found is None:
                return None
            if now - found.seen > IDLE_TTL or now - found.opened > MAX_TTL:
                del self._open[session_id]
                return None
            found.seen = now
            self._open.move_to_end(session_id)
            return found

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._open.pop(session_id or "", None)


def cookie_value(header: str | None) -> str | None:
    """The session id in a ``Cookie`` header, or None."""
    if not header:
        return None
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None
