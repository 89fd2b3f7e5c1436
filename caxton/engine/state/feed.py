"""The state feed of a PostgreSQL store: how a replica learns of what other engines changed, and who leads.

One dedicated connection per engine (autocommit, outside the pools):

- it ``LISTEN``s on ``CHANNEL``: every write transaction of the store that changed
  something (``Store.transaction``) and every save of a rollout record
  (``caxton.engine.state.rollouts``) does ``pg_notify(CHANNEL, ...)`` inside the
  transaction, so the notification is delivered on commit only;
- ``observe`` waits up to ``timeout`` seconds for a notification, then reads an
  ``Observed``: the state serial and a fingerprint of the rollouts in flight and of the
  pending rollout requests, in one round trip. The caller compares it with the last
  one: a lost notification costs at most one ``timeout`` (the polling fallback);
- it holds the *rollout leadership*: a session advisory lock (``LEADER_KEY``) taken
  with ``pg_try_advisory_lock``. The lock lives as long as this connection: when the
  engine dies (or its connection does) PostgreSQL releases it and the next engine
  that tries takes it.

Any error on the connection closes it and drops the leadership at once (``leader``
is False before ``observe`` returns); the next ``observe`` reconnects. Used only by
``caxton.engine.replica`` (and only on PostgreSQL: an embedded store has one engine).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caxton.engine.state.pg_connections import CONNECT_TIMEOUT
from caxton.spec.api import ROLLOUT_ACTIVE
from caxton.spec.secrets import redact_url

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: The channel of the store's change notifications.
CHANNEL = "caxton_state"
#: The session advisory lock of the rollout leader (the store's write lock is ...0001).
LEADER_KEY = 0x43617874_6F6E0002
#: The key prefix of a rollout request in the ``meta`` table (``caxton.engine.state.rollouts``).
REQUEST_PREFIX = "rollout_request:"

_ACTIVE = tuple(sorted(status.value for status in ROLLOUT_ACTIVE))
_OBSERVE = (
    "SELECT (SELECT value FROM meta WHERE key = 'serial') AS serial, "
    "(SELECT md5(COALESCE(string_agg(id || ':' || md5(body), ',' ORDER BY id), '')) FROM rollouts "
    f"WHERE status IN ({', '.join('%s' for _ in _ACTIVE)})) AS rollouts, "
    "(SELECT md5(COALESCE(string_agg(key || '=' || value, ',' ORDER BY key), '')) FROM meta "
    "WHERE key LIKE %s) AS requests"
)


@dataclass(frozen=True)
class Observed:
    """What the store looked like at one instant, as far as a replica cares."""

    serial: int
    #: A digest of every rollout in flight (its id and record): changes with a step, a status, a measurement.
    rollouts: str
    #: A digest of the pending rollout requests (promote/abort sent to a replica that does not drive it).
    requests: str


class StateFeed:
    """The dedicated connection of one engine: notifications, the serial poll, the leadership lock."""

    def __init__(self, url: str, *, lead: bool = True) -> None:
        self.url = url
        #: Whether this engine competes for the rollout leadership.
        self.lead = lead
        self._conn: psycopg.Connection[Any] | None = None
        self._leader = False

    @property
    def leader(self) -> bool:
        """This engine holds the leadership lock (as of the last ``observe``; False once the connection failed)."""
        return self._leader

    @property
    def backend_pid(self) -> int | None:
        """The server process of the connection (None while there is none): what ``pg_locks`` names."""
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.info.backend_pid)

    def observe(self, timeout: float) -> Observed | None:
        """Wait up to ``timeout`` s for a notification, try to lead, and read the state; None: no connection."""
        try:
            conn = self._connect()
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                break
            if self.lead and not self._leader:
                row = conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (LEADER_KEY,)).fetchone()
                self._leader = bool(row and row[0])
            found = conn.execute(_OBSERVE, (*_ACTIVE, REQUEST_PREFIX + "%")).fetchone()
        except Exception as error:  # noqa: BLE001 - any failure: the connection (and the leadership) is gone
            if self._conn is not None or self._leader:
                log.warning("the state feed's connection to %s failed (%s); reconnecting",
                            redact_url(self.url), " ".join(str(error).split()) or type(error).__name__)
            self.close()
            return None
        if found is None:
            return None
        return Observed(int(found[0]), str(found[1]), str(found[2]))

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg

        self._leader = False
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT))
        conn.execute(f"LISTEN {CHANNEL}")
        self._conn = conn
        return conn

    def close(self) -> None:
        """Drop the connection: the leadership lock (if held) goes with it."""
        self._leader = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - already broken
                pass
