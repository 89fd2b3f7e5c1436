"""The schema version guard on both backends: the store records its schema version and the caxton version that
wrote it; an engine older than the schema refuses to start; a newer one refuses to migrate while an older engine
(its heartbeat row) uses the schema, and migrates once that engine stopped or went stale."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from caxton import __version__
from caxton.engine.state.migrations import MIGRATIONS
from caxton.engine.state.migrations_pg import MIGRATIONS as PG_MIGRATIONS
from caxton.engine.state.schema import STALE_AFTER, Migrations, SchemaInUse, SchemaTooNew
from caxton.engine.state.store import Store
from tests.support.engine import EngineProcess, no_memory
from tests.support.paths import free_port, python_path

FUTURE = ("0099_future", "CREATE TABLE future_things (x INTEGER)")


@pytest.fixture
def now() -> list[float]:
    return [1_000_000.0]


@pytest.fixture
def open_store(tmp_path: Path, store_url: str | None, now: list[float]) -> Iterator[Callable[..., Store]]:
    """``open_store(newer=False)``: this code's store, or (``newer``) one whose code knows one more migration."""
    opened: list[Store] = []
    known: Migrations = MIGRATIONS if store_url is None else PG_MIGRATIONS

    def make(*, newer: bool = False) -> Store:
        opened.append(Store.open(tmp_path, store_url, migrations=(*known, FUTURE) if newer else None,
                                 clock=lambda: now[0]))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def test_the_store_records_its_schema_version_and_writer(open_store: Callable[..., Store]) -> None:
    store = open_store()
    assert store.schema_version() == (len(MIGRATIONS), __version__)
    assert len(PG_MIGRATIONS) == len(MIGRATIONS)


def test_an_engine_older_than_the_schema_refuses_to_start(open_store: Callable[..., Store]) -> None:
    newer = open_store(newer=True)
    assert newer.schema_version()[0] == len(MIGRATIONS) + 1 and newer.migrations()[-1] == "0099_future"
    newer.close()
    with pytest.raises(SchemaTooNew) as refused:
        open_store()
    message = refused.value.message
    assert f"schema version {len(MIGRATIONS) + 1}" in message and "0099_future" in message
    assert f"knows schema version {len(MIGRATIONS)}" in message and "never migrated down" in (refused.value.hint or "")


def test_a_newer_engine_refuses_to_migrate_while_an_older_one_runs(
        open_store: Callable[..., Store], now: list[float]) -> None:
    older = open_store()
    engine_id = older.register_engine()
    assert [e.id for e in older.engines()] == [engine_id]
    now[0] += STALE_AFTER - 1
    older.heartbeat(engine_id)  # alive: seen just now
    now[0] += STALE_AFTER - 1
    with pytest.raises(SchemaInUse) as refused:
        open_store(newer=True)
    message = refused.value.message
    assert f"caxton {__version__}" in message and f"schema version {len(MIGRATIONS)}" in message and "pid" in message
    assert "stop or upgrade those engines first" in (refused.value.hint or "")
    assert "0099_future" not in older.migrations()  # nothing changed

    older.forget_engine(engine_id)  # it stopped: the migration may run
    newer = open_store(newer=True)
    assert newer.migrations()[-1] == "0099_future"
    with pytest.raises(SchemaTooNew):
        older.register_engine()  # the older code may not start again on the migrated schema


def test_an_older_engine_that_died_is_forgotten_after_its_heartbeats_stop(
        open_store: Callable[..., Store], now: list[float]) -> None:
    older = open_store()
    older.register_engine()  # then killed: its row stays
    now[0] += STALE_AFTER - 1
    with pytest.raises(SchemaInUse):
        open_store(newer=True)
    now[0] += 2
    assert open_store(newer=True).migrations()[-1] == "0099_future"


def test_a_real_engine_older_than_the_postgres_schema_exits_1(tmp_path: Path, pg_url: str) -> None:
    Store.open(tmp_path, pg_url, migrations=(*PG_MIGRATIONS, FUTURE)).close()
    env = {"PYTHONPATH": python_path({}), "CAXTON_STORE_URL": pg_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "caxton", "server", "start", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "data"), "--config", str(no_memory(tmp_path))],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "0099_future" in done.stderr and "never migrated down" in done.stderr


def test_an_older_engine_killed_on_this_host_does_not_hold_the_migration_back(
        open_store: Callable[..., Store]) -> None:
    older = open_store()
    engine_id = older.register_engine()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid of this host that no longer exists: the older engine, killed -9 a moment ago
    with older.unversioned() as conn:
        conn.execute("UPDATE engines SET pid = ? WHERE id = ?", (child.pid, engine_id))
    assert open_store(newer=True).migrations()[-1] == "0099_future"  # at once, not after STALE_AFTER


class NewerEngine(EngineProcess):
    """``caxton server start`` whose code knows one more PostgreSQL migration (``FUTURE``): a newer release."""

    def command(self) -> list[str]:
        plain = super().command()
        assert plain[1:3] == ["-m", "caxton"]
        newer = ("import sys, runpy; import caxton.engine.state.migrations_pg as pg; "
                 f"pg.MIGRATIONS = (*pg.MIGRATIONS, {FUTURE!r}); sys.argv = ['caxton', *sys.argv[1:]]; "
                 "runpy.run_module('caxton', run_name='__main__')")
        return [plain[0], "-c", newer, *plain[3:]]


def test_a_newer_replica_refuses_to_migrate_the_schema_a_running_replica_uses(tmp_path: Path, pg_url: str) -> None:
    env = {"CAXTON_STORE_URL": pg_url}
    older = EngineProcess(tmp_path / "older" / "data", config=no_memory(tmp_path / "older"), env=env).start()
    newer = NewerEngine(tmp_path / "newer" / "data", config=no_memory(tmp_path / "newer"), env=env)
    try:
        assert older.proc is not None
        with pytest.raises(RuntimeError, match="exited with 1 before ready") as refused:
            newer.start()
        said = str(refused.value)
        assert f"to schema version {len(PG_MIGRATIONS) + 1}" in said and f"pid {older.proc.pid}" in said, said
        assert "stop or upgrade those engines first" in said
        with older.client() as client:  # the older replica never noticed: it serves on its schema
            assert client.request("GET", "/health/detailed")["store"]["schema_version"] == len(PG_MIGRATIONS)
        assert older.terminate() == 0  # stopped cleanly: its heartbeat row goes with it
        newer.start()  # now the newer one migrates
        with newer.client() as client:
            assert client.request("GET", "/health/detailed")["store"]["schema_version"] == len(PG_MIGRATIONS) + 1
    finally:
        for engine in (older, newer):
            if engine.running:
                engine.terminate()
