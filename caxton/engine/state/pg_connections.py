"""The connections of one PostgreSQL database of the engine: a psycopg pool, replaced whole after an outage.

``PgConnections.connection()`` checks a connection out for one transaction
(or a few reads). What it adds to psycopg_pool is the engine's behaviour while
the server is down or restarting (docs/scale-out.md, "Failure modes"):

- **Fail fast, one error.** A call that cannot reach the server raises
  ``caxton.errors.StoreUnavailable`` (503 ``store_unavailable``: the store, its
  URL with the password redacted, the server's own reason). While the server
  is known to be down the pool is closed and each call probes it with one
  direct connection (refused at once when it is down; at most
  ``PROBE_TIMEOUT`` s when it does not answer) instead of waiting for the
  pool's ``CONNECT_TIMEOUT``. One call probes at a time; calls that waited for
  that probe take its answer.
- **Recover without a restart, and no stale connection.** psycopg_pool retries
  a lost server in the background with a backoff that grows to minutes, and
  hands out a connection cut by a restart (or, with ``check=``, sleeps a
  second per dead one). So the pool is never kept across an outage: a call
  that finds the server gone (a connection broken during a statement, or one
  that the server closed while it sat in the pool, seen without a round trip:
  its socket is readable) drops the whole pool; the next call that reaches the
  server opens a new one. The first call after the server is back works.
- **Log once.** The start of an outage is one warning, its end one info line;
  the failures in between are the callers' errors (background writers keep
  them quiet: ``caxton.engine.logs``, ``caxton.engine.heartbeat``).
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caxton.errors import StoreUnavailable
from caxton.spec.secrets import redact_url

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    Raw = psycopg.Connection[dict[str, Any]]

log = logging.getLogger(__name__)
#: Seconds a call waits for a pooled connection (all busy), and a new connection waits for the server.
CONNECT_TIMEOUT = 5.0
#: Seconds a probe of a server known to be down waits for it (libpq's connect_timeout: whole seconds, >= 2).
PROBE_TIMEOUT = 2


@dataclass
class Outage:
    """Why the server is unavailable: since when (wall and monotonic time) and the last probe's answer."""

    since: float
    since_monotonic: float
    reason: str
    probed: float

    def view(self) -> dict[str, Any]:
        return {"since": self.since, "seconds": round(time.monotonic() - self.since_monotonic, 3),
                "reason": self.reason}


def unavailable(url: str, reason: str) -> StoreUnavailable:
    """The one error of a store that does not answer (its URL's password redacted, also in the reason)."""
    shown = redact_url(url)
    return StoreUnavailable(
        f"the PostgreSQL store at {shown} is unavailable: {reason.replace(url, shown)}",
        hint="the engine keeps serving the agents it runs; changes (deploys, applies, the apply lock, rollouts) "
             "and config agents' conversations are refused until the database answers again, then work "
             "without restarting the engine: start PostgreSQL or restore the network to it "
             "(store.url / CAXTON_STORE_URL)",
    )


def reason_of(error: BaseException) -> str:
    """The server's (or libpq's) reason on one line."""
    return " ".join(str(error).split()) or type(error).__name__


class PgConnections:
    """The pool of one database (``None`` between an outage and the next call that reaches the server)."""

    def __init__(self, url: str, *, max_size: int, name: str, kwargs: dict[str, Any]) -> None:
        self.url = url
        self._name = name
        self._max_size = max_size
        self._kwargs = {**kwargs, "connect_timeout": int(CONNECT_TIMEOUT)}
        self._opening = threading.Lock()  # held while a call probes and opens a pool
        self._swap = threading.Lock()  # held while the current pool is dropped
        self._closed = False
        #: Set while the server is down (the last probe failed, or a call lost it); None while it answers.
        self.outage: Outage | None = None
        self._pool: ConnectionPool[Raw] | None = self._open()  # at start: the caller's error (exit 1)

    def _open(self) -> ConnectionPool[Raw]:
        from psycopg_pool import ConnectionPool

        pool: ConnectionPool[Raw] = ConnectionPool(
            self.url, min_size=1, max_size=self._max_size, open=False, name=self._name, timeout=CONNECT_TIMEOUT,
            kwargs=self._kwargs)
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except BaseException:
            pool.close(timeout=0)
            raise
        return pool

    @contextmanager
    def connection(self) -> Iterator[Raw]:
        """One connection that answered a moment ago; ``StoreUnavailable`` when the server does not."""
        import psycopg

        pool, raw = self._checkout()
        try:
            yield raw
        except psycopg.Error as error:
            if raw.closed:  # the server went away during the call (shut down, restarted, network cut)
                self._lost(pool, reason_of(error))
                raise unavailable(self.url, reason_of(error)) from error
            raise
        finally:
            pool.putconn(raw)  # to a pool dropped meanwhile: closed quietly

    def _checkout(self) -> tuple[ConnectionPool[Raw], Raw]:
        from psycopg_pool import PoolClosed, PoolTimeout

        for _ in range(3):
            pool = self._pool or self._reopen()
            try:
                raw = pool.getconn()
            except PoolClosed:  # another call dropped it meanwhile: take the next one
                continue
            except PoolTimeout as error:
                self._probe_after_timeout(pool, error)
                raise unavailable(self.url, f"no connection free within {CONNECT_TIMEOUT:.0f}s "
                                            f"(all {self._max_size} busy)") from error
            if _alive(raw):
                return pool, raw
            self._lost(pool, "the server closed a pooled connection (restarted?)", down=False)
            pool.putconn(raw)
        raise unavailable(self.url, "the server closes every new connection")

    def _probe_after_timeout(self, pool: ConnectionPool[Raw], error: BaseException) -> None:
        """No pooled connection within the timeout: busy, or the server is gone (then: drop the pool, raise)."""
        with self._opening:  # one probe at a time
            if self._pool is not pool:  # another call found out meanwhile
                return
            try:
                _probe(self.url)
            except Exception as failed:  # noqa: BLE001 - any failure to connect is the outage's reason
                reason = reason_of(failed)
            else:
                return
        self._lost(pool, reason)
        raise unavailable(self.url, reason) from error

    def _reopen(self) -> ConnectionPool[Raw]:
        """A new pool once the server answers a probe; else ``StoreUnavailable`` with its reason."""
        waited_since = time.monotonic()
        with self._opening:  # one call probes at a time; the others take its answer
            if self._pool is not None:
                return self._pool
            if self._closed:
                raise unavailable(self.url, "the engine is stopping (the store is closed)")
            outage = self.outage
            if outage is not None and outage.probed >= waited_since:
                raise unavailable(self.url, outage.reason)
            try:
                _probe(self.url)
                pool = self._open()
            except Exception as error:  # noqa: BLE001 - any failure to connect is the outage's reason
                self._down(reason_of(error))
                raise unavailable(self.url, reason_of(error)) from error
            self._pool = pool
            if outage is not None:
                self.outage = None
                log.info("the PostgreSQL store at %s (%s) answers again after %.1fs: changes are accepted",
                         redact_url(self.url), self._name, time.monotonic() - outage.since_monotonic)
            return pool

    def _lost(self, pool: ConnectionPool[Raw], reason: str, *, down: bool = True) -> None:
        """Drop ``pool`` (unless another call did already); ``down``: the server is gone, not just restarted."""
        with self._swap:
            if self._pool is not pool:
                return
            self._pool = None
        if down:
            self._down(reason)
        else:
            log.info("the PostgreSQL store at %s (%s): %s; reconnecting", redact_url(self.url), self._name, reason)
        pool.close(timeout=1.0)  # its connections in use are closed when they come back

    def _down(self, reason: str) -> None:
        now = time.monotonic()
        if self.outage is None:
            self.outage = Outage(time.time(), now, reason, now)
            log.warning("the PostgreSQL store at %s (%s) is unavailable: %s; the engine keeps serving its agents "
                        "and refuses changes until it answers again", redact_url(self.url), self._name,
                        reason.replace(self.url, redact_url(self.url)))
        else:
            self.outage.reason, self.outage.probed = reason, now

    def close(self) -> None:
        with self._opening:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def _probe(url: str) -> None:
    """Connect once, directly (not through a pool): the server's own reason when it does not answer."""
    import psycopg

    with psycopg.connect(url, connect_timeout=PROBE_TIMEOUT, autocommit=True) as conn:
        conn.execute("SELECT 1")


def _alive(raw: Raw) -> bool:
    """Whether a pooled connection still works, without a round trip in the usual case.

    An idle connection's socket has nothing to read; one the server closed (a restart sends a FATAL
    "terminating connection due to administrator command", then hangs up) is readable. Only then is
    it asked (an empty query), which fails on a dead one.
    """
    import psycopg

    if raw.closed:
        return False
    try:
        poller = select.poll()  # not select.select: a process with many files has descriptors past FD_SETSIZE
        poller.register(raw.fileno(), select.POLLIN)
        if poller.poll(0):
            raw.execute("")
    except (OSError, ValueError, psycopg.Error):
        return False
    return not raw.closed
