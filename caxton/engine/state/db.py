"""The storage seam: one small ``Database`` interface, a SQLite and a PostgreSQL implementation.

The engine's SQL (``caxton.engine.state``) is written once, with ``?``
placeholders, against ``Conn`` (``execute``/``executemany`` returning rows
that read by column name); where the dialects differ the caller asks
``Database.dialect`` or one of the few helpers here (``insert_id``,
``run_script``), and the schemas are per backend (``migrations`` for SQLite,
``migrations_pg`` for PostgreSQL). No ORM.

- ``SqliteDatabase``: one connection under a lock, ``BEGIN IMMEDIATE`` write
  transactions (one writer at a time, across processes too: SQLite's lock).
- ``PostgresDatabase``: a psycopg 3 connection pool (``pg_connections``); a write transaction is
  ``BEGIN`` ... ``COMMIT`` on one pooled connection; with ``serialize_writes``
  it first takes a transaction-scoped advisory lock, so the writes of every
  process on the database run one at a time, as SQLite's do: the state
  serial is bumped once per transaction and stays unique and monotonic, and
  the apply lease's read-then-write is atomic across engines. Reads inside a
  write transaction (same thread) see its uncommitted writes, as on SQLite.
  Without ``synchronous_commit`` (the history's connections) a commit does
  not wait for the server's WAL flush: the PostgreSQL counterpart of the
  history's ``synchronous=NORMAL`` on SQLite (an engine crash loses nothing;
  a crash of the database server may lose the last fraction of a second).

``open_postgres`` gives a clear ``StoreError`` (what, where, fix) when the server
is unreachable or refuses the role at start; later, while it is down or restarting,
calls fail fast with ``StoreUnavailable`` and the connections recover by themselves
(``caxton.engine.state.pg_connections``); ``caxton.spec.secrets.redact_url`` hides a URL's password
wherever one is shown or logged.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from caxton.engine.state.pg_connections import CONNECT_TIMEOUT, PgConnections
from caxton.errors import CaxtonError
from caxton.spec.secrets import redact_url

if TYPE_CHECKING:
    import psycopg

Dialect = Literal["sqlite", "postgres"]
#: The advisory lock every serialized write transaction of a PostgreSQL store takes (any fixed 64-bit key).
WRITE_LOCK_KEY = 0x43617874_6F6E0001
#: Up to this many rows, ``executemany`` runs one statement per row (a turn pair, a few pins).
SMALL_BATCH = 16


class StoreError(CaxtonError):
    """The engine's database cannot be opened or written."""

    code = "store_error"
    http_status = 500


class Cursor(Protocol):
    """What a statement returns: rows readable by column name (``row["id"]``, ``row.keys()``)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """A connection inside ``Database.write``/``read``: ``?`` placeholders on both backends."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, params: Iterable[Any], /) -> object: ...


class Database(Protocol):
    """One database of the engine: write transactions, reads, a schema script, and its dialect."""

    dialect: Dialect
    #: Where it is, safe to show (a path, or a URL with its password redacted).
    location: str
    #: The driver's exception classes (a failed statement raises one of them).
    errors: tuple[type[Exception], ...]

    def write(self) -> AbstractContextManager[Conn]: ...  # one write transaction
    def read(self, *, snapshot: bool = False) -> AbstractContextManager[Conn]: ...  # a few reads (snapshot: one instant)
    def run_script(self, conn: Conn, script: str) -> None: ...
    def insert_id(self, conn: Conn, sql: str, params: Any) -> int: ...
    def close(self) -> None: ...


# --- SQLite -------------------------------------------------------------------------------
def connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    """A connection to an engine database: WAL, explicit transactions (autocommit mode), ``sqlite3.Row`` rows."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite already rolled back after SQLITE_FULL and some I/O errors
            conn.execute("ROLLBACK")
        raise


class SqliteDatabase:
    """One SQLite file, one connection, one lock (the connection is not shared between threads at once)."""

    dialect: Dialect = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, *, synchronous: str, foreign_keys: bool = False) -> None:
        self.path = path
        self.location = str(path)
        self._conn = connect(path, synchronous=synchronous)
        if foreign_keys:
            self._conn.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        self._closed = False

    @contextmanager
    def write(self) -> Iterator[Conn]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Conn]:
        with self._lock:  # under the lock no writer of this process is mid-transaction: a snapshot already
            yield self._conn

    def run_script(self, conn: Conn, script: str) -> None:
        for statement in split_sql(script):
            conn.execute(statement)

    def insert_id(self, conn: Conn, sql: str, params: Any) -> int:
        cursor = conn.execute(sql, params)
        return int(getattr(cursor, "lastrowid", 0) or 0)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._conn.close()
                self._closed = True


def open_sqlite(data_dir: Path, name: str) -> SqliteDatabase:
    """The store's SQLite database ``name`` in ``data_dir`` (created with the directory), or ``StoreError``."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteDatabase(data_dir / name, synchronous="FULL", foreign_keys=True)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"cannot open the engine database in {data_dir}: {error}",
                         hint="check that --data-dir points to a writable directory") from error


def split_sql(script: str) -> list[str]:
    """Split a SQLite script into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        current.append(line)
        joined = "\n".join(current)
        if line.rstrip().endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current))
    return [s.strip() for s in statements if s.strip()]


# --- PostgreSQL ---------------------------------------------------------------------------
@lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled). The engine's SQL has no ``?`` in literals."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConn:
    """A pooled psycopg connection speaking ``?`` placeholders (rows are dicts)."""

    def __init__(self, raw: psycopg.Connection[dict[str, Any]]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = (), /) -> Cursor:
        return self.raw.execute(to_pyformat(sql), tuple(params))

    def executemany(self, sql: str, params: Iterable[Any], /) -> object:
        rows = [tuple(p) for p in params]
        query = to_pyformat(sql)
        if len(rows) <= SMALL_BATCH:  # psycopg's executemany (a pipeline) costs ~3 ms more for a couple of rows
            for row in rows:
                self.raw.execute(query, row)
        else:
            with self.raw.cursor() as cursor:
                cursor.executemany(query, rows)
        return None


class PostgresDatabase:
    """A PostgreSQL database through a psycopg connection pool (connections in autocommit; explicit BEGIN)."""

    dialect: Dialect = "postgres"

    def __init__(self, url: str, *, serialize_writes: bool, synchronous_commit: bool = True, max_size: int = 4,
                 name: str = "caxton") -> None:
        import psycopg
        from psycopg.rows import dict_row

        self.url = url
        self.location = redact_url(url)
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        #: What opens a write transaction: BEGIN, and the lock serializing the store's writes across processes.
        self._begin = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY:d})" if serialize_writes else "BEGIN"
        self._local = threading.local()
        check(url)
        options = {} if synchronous_commit else {"options": "-c synchronous_commit=off"}
        try:
            self.connections = PgConnections(url, max_size=max_size, name=name,
                                             kwargs={"autocommit": True, "row_factory": dict_row, **options})
        except Exception as error:
            raise unreachable(url, error) from error

    @property
    def outage(self) -> dict[str, Any] | None:
        """Since when and why the server does not answer; None while it does."""
        outage = self.connections.outage
        return outage.view() if outage is not None else None

    @contextmanager
    def write(self) -> Iterator[Conn]:
        if getattr(self._local, "conn", None) is not None:
            raise StoreError("a write transaction is already open in this thread (nested writes are a bug)")
        with self.connections.connection() as raw:
            conn = PgConn(raw)
            self._local.conn = conn
            try:
                raw.execute(self._begin)  # with the lock: one round trip (simple query, two statements)
                yield conn
                raw.execute("COMMIT")
            except BaseException:
                _rollback(raw)
                raise
            finally:
                self._local.conn = None

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Conn]:
        current: PgConn | None = getattr(self._local, "conn", None)
        if current is not None:  # inside this thread's write transaction: read its own writes
            yield current
            return
        with self.connections.connection() as raw:
            if not snapshot:
                yield PgConn(raw)
                return
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            try:
                yield PgConn(raw)
                raw.execute("COMMIT")
            except BaseException:
                _rollback(raw)
                raise

    def run_script(self, conn: Conn, script: str) -> None:
        if not isinstance(conn, PgConn):
            raise TypeError("run_script needs a connection of this database")
        conn.raw.execute(script)  # type: ignore[arg-type]  # a trusted, constant schema script (no parameters)

    def insert_id(self, conn: Conn, sql: str, params: Any) -> int:
        return int(conn.execute(f"{sql} RETURNING id", params).fetchone()["id"])

    def close(self) -> None:
        self.connections.close()


def _rollback(raw: psycopg.Connection[Any]) -> None:
    from psycopg import pq

    try:
        if raw.info.transaction_status != pq.TransactionStatus.IDLE:
            raw.execute("ROLLBACK")
    except Exception:  # noqa: BLE001, S110 - the connection is broken: the pool discards it
        pass


def check(url: str) -> None:
    """Connect once to ``url`` (fails fast with the server's own reason), else ``StoreError``."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        raise unreachable(url, error) from error


def unreachable(url: str, error: BaseException) -> StoreError:
    reason = " ".join(str(error).split()) or type(error).__name__
    return StoreError(
        f"cannot connect to the PostgreSQL store at {redact_url(url)}: {reason.replace(url, redact_url(url))}",
        hint="check store.url (or CAXTON_STORE_URL): the server must be running and reachable, the database "
             "must exist, and the role must be allowed to log in (pg_hba.conf, password)",
    )


def open_postgres(url: str, *, serialize_writes: bool, synchronous_commit: bool = True,
                  name: str = "caxton") -> PostgresDatabase:
    """A ``PostgresDatabase`` at ``url``; a clear error without the ``postgres`` extra or for another scheme."""
    if not is_postgres_url(url):
        raise StoreError(f"store.url {redact_url(url)!r} is not a PostgreSQL URL",
                         hint="use postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or leave store.url unset for "
                              "the embedded SQLite store in the data directory")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as error:
        raise StoreError("store.url names PostgreSQL but psycopg is not installed",
                         hint="install the postgres extra: pip install 'caxton[postgres]'") from error
    return PostgresDatabase(url, serialize_writes=serialize_writes, synchronous_commit=synchronous_commit, name=name)


def is_postgres_url(url: str) -> bool:
    return url.split(":", 1)[0] in ("postgresql", "postgres")
