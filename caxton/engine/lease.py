"""The engine's apply lock: one lease with a holder, a reason and an expiry.

``caxton apply`` takes it before submitting a plan and renews it while it
follows the apply; a lease whose holder died expires by itself, so a killed
CI job cannot wedge the engine. It is free at once (not after its ttl) when
its holder is known dead: the holder names a process on this host
(``user@host pid N``, as ``caxton apply`` writes it) that no longer exists;
and when an engine marks the holder's apply interrupted (the engine running it
died) or finishes it after an outage (:meth:`ApplyLock.release_held_by`, called by
``caxton.engine.applies.ApplyRunner``). Stored by
``caxton.engine.state.leases`` outside the state serial: taking the lock is not a change of the agents.
Called by the API (``caxton.engine.http.applies``) and ``caxton.engine.applies``.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from caxton.engine import processes
from caxton.engine.state import leases
from caxton.engine.state.leases import Lease
from caxton.engine.state.records import utcnow
from caxton.engine.state.store import Store
from caxton.errors import Conflict, InvalidInput, LockHeld

MIN_TTL = 1.0
MAX_TTL = 3600.0
#: ``user@host pid N`` at the end of a holder (a token's name may prefix it: ``deployer (user@host pid N)``).
_HOLDER_PROCESS = re.compile(r"@(?P<host>[^\s@()]+) pid (?P<pid>\d{1,10})\)?$")


class ApplyLock:
    """Acquire, renew, release and inspect the lease."""

    def __init__(self, store: Store, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock

    def current(self) -> Lease | None:
        """The live lease, or None when free (an expired lease is free)."""
        with self.store.unversioned() as conn:
            return self._live(conn)

    def acquire(self, holder: str, reason: str, ttl: float) -> Lease:
        ttl = _check_ttl(ttl)
        now = self.clock()
        with self.store.unversioned() as conn:
            held = self._live(conn)
            if held is not None:
                raise LockHeld(
                    f"the apply lock is held by {held.holder} ({held.reason or 'no reason given'}) "
                    f"since {held.created_at}; it expires in {max(held.expires_at - now, 0):.0f}s",
                    hint="wait for that apply to finish, or run `caxton lock release --force` if its holder is gone",
                    details=held.public(now),
                )
            lease = Lease(secrets.token_urlsafe(18), holder or "unknown", reason, utcnow(), now + ttl)
            leases.write(conn, lease)
            return lease

    def renew(self, token: str, ttl: float) -> Lease:
        ttl = _check_ttl(ttl)
        with self.store.unversioned() as conn:
            lease = self._owned(conn, token)
            renewed = Lease(lease.token, lease.holder, lease.reason, lease.created_at, self.clock() + ttl)
            leases.extend(conn, renewed.expires_at)
            return renewed

    def check(self, token: str) -> Lease:
        """The lease ``token`` names, if it is live; else ``Conflict``."""
        with self.store.unversioned() as conn:
            return self._owned(conn, token)

    def release(self, token: str | None, *, force: bool = False) -> Lease | None:
        """Free the lock; without ``force`` only its holder (``token``) may."""
        with self.store.unversioned() as conn:
            held = self._live(conn)
            if held is None:
                leases.delete(conn)
                return None
            if not force and token != held.token:
                raise LockHeld(
                    f"the apply lock is held by {held.holder}, not by the caller",
                    hint="only its holder releases it; use `caxton lock release --force` if the holder is gone",
                    details=held.public(),
                )
            leases.delete(conn)
            return held

    def release_held_by(self, holder: str) -> Lease | None:
        """Free the lease if ``holder`` has it (its apply ended without it: cut short by a dead engine or an
        outage); return it."""
        with self.store.unversioned() as conn:
            held = self._live(conn)
            if held is None or held.holder != holder:
                return None
            leases.delete(conn)
            return held

    def _live(self, conn: Any) -> Lease | None:
        lease = leases.read(conn)
        if lease is None:
            return None
        return lease if lease.expires_at > self.clock() and not holder_is_dead(lease.holder) else None

    def _owned(self, conn: Any, token: str) -> Lease:
        lease = self._live(conn)
        if lease is None or lease.token != token:
            raise Conflict(
                "the apply lock is not held by this caller (it expired or was released)",
                hint="run `caxton apply` again: it takes the lock before submitting",
            )
        return lease


def holder_is_dead(holder: str) -> bool:
    """True only when ``holder`` names a process of this host that does not exist (a reused pid looks alive)."""
    match = _HOLDER_PROCESS.search(holder)
    return match is not None and processes.gone(match["host"], int(match["pid"]))


def _check_ttl(ttl: float) -> float:
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidInput(f"lock ttl {ttl} is out of range", hint=f"use {MIN_TTL:.0f} to {MAX_TTL:.0f} seconds")
    return float(ttl)
