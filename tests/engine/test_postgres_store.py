"""An engine whose state is in PostgreSQL (``store.url`` / ``CAXTON_STORE_URL``): a real engine subprocess applies
the quickstart through the CLI, answers, keeps its agents across kill -9 and in a fresh data directory, never shows
the URL's password; clear errors (exit 1) for an unreachable server and a role that may not create tables."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from caxton import __version__
from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.engine.state.migrations_pg import MIGRATIONS as PG_MIGRATIONS
from caxton.engine.state.store import Store
from caxton.errors import CaxtonError
from tests.conftest import CliResult
from tests.support.engine import EngineProcess, no_memory, running_engine
from tests.support.git import DesiredRepo
from tests.support.paths import free_port, python_path

SECRET = "s3cret-pw-do-not-show"


def with_password(url: str, password: str = SECRET) -> str:
    """``url`` (the test server trusts its unix socket: any password is accepted) with a password in it."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    return url.replace(f"//{parts.netloc}", f"//{user}:{password}@{parts.netloc.rpartition('@')[2]}", 1)


def states(engine: EngineProcess) -> dict[str, tuple[str, int | None]]:
    with engine.client() as client:
        return {a.id: (a.state, a.revision) for a in status_api.state(client).agents}


def test_an_engine_on_postgres_applies_the_quickstart_answers_and_keeps_its_agents(
        tmp_path: Path, pg_url: str, desired_repo: DesiredRepo, run_cli: object) -> None:
    url = with_password(pg_url)
    env = {"CAXTON_STORE_URL": url}
    with running_engine(tmp_path / "one", env=env, config=no_memory(tmp_path / "one")) as engine:
        result: CliResult = run_cli("apply", str(desired_repo.agents), "--engine", engine.url,  # type: ignore[operator]
                                    "--auto-approve")
        assert result.code == 0, result.err
        applied = {"data-processor": ("Active", 1), "scorer": ("Running", 1), "summarizer": ("Active", 1),
                   "word-count": ("Running", 1)}
        assert states(engine) == applied
        with engine.client() as client:
            assert agent_api.send(client, "scorer", {"hello": "world"}).reply["agent"] == "scorer"
            detailed = client.request("GET", "/health/detailed")
        assert detailed["store"]["backend"] == "postgres" and detailed["store"]["path"] is None
        assert detailed["store"]["schema_version"] == len(PG_MIGRATIONS) and detailed["store"]["written_by"] == __version__
        store = Store.open(tmp_path / "reader", url)  # the running engine's heartbeat row (schema version guard)
        assert [(e.caxton_version, e.schema_version) for e in store.engines()] == [(__version__, len(PG_MIGRATIONS))]
        store.close()
        assert SECRET not in json.dumps(detailed) and "***" in detailed["store"]["location"]
        assert not (engine.data_dir / "engine.db").exists()  # nothing of the state is in the data directory

        assert engine.kill() == -9
        engine.start()
        assert states(engine) == applied
        with engine.client() as client:
            assert agent_api.send(client, "scorer", {"again": 1}).reply["agent"] == "scorer"
        log = engine.log_text()
    assert SECRET not in log
    assert f"(data dir {engine.data_dir}, state in postgresql://postgres:***@/" in log  # the start announcement

    # A second engine with an empty data directory on the same database serves the same agents.
    with running_engine(tmp_path / "two", env=env, config=no_memory(tmp_path / "two")) as other:
        assert states(other) == applied
        again = run_cli("plan", str(desired_repo.agents), "--engine", other.url,  # type: ignore[operator]
                        "--detailed-exitcode")
        assert again.code == 0, again.err  # the desired state is what the database holds: no changes
        assert SECRET not in other.log_text()


def start_failure(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": python_path({}), "CAXTON_STORE_URL": url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "caxton", "server", "start", "--host", "127.0.0.1", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "data"), "--config", str(no_memory(tmp_path))],
        env=env, capture_output=True, text=True, timeout=120, check=False)


def test_an_unreachable_database_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    done = start_failure(tmp_path, f"postgresql://caxton:{SECRET}@127.0.0.1:{port}/caxton")
    assert done.returncode == 1, done.stderr
    assert f"cannot connect to the PostgreSQL store at postgresql://caxton:***@127.0.0.1:{port}/caxton" in done.stderr
    assert "CAXTON_STORE_URL" in done.stderr and "hint:" in done.stderr
    assert SECRET not in done.stderr + done.stdout


@pytest.fixture
def limited_role(pg_server_url: str) -> Iterator[str]:
    """A role that may log in but not create anything in a database's public schema (PostgreSQL >= 15)."""
    name = f"cx_limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{name}" LOGIN')
    try:
        yield name
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_a_role_without_create_privilege_gets_a_clear_error(tmp_path: Path, pg_url: str, limited_role: str) -> None:
    parts = urlsplit(pg_url)
    url = pg_url.replace(f"//{parts.netloc}", f"//{limited_role}:{SECRET}@", 1)
    with pytest.raises(CaxtonError) as refused:
        Store.open(tmp_path, url)
    assert "permission denied" in refused.value.message and "***" in refused.value.message
    assert "GRANT CREATE ON SCHEMA public" in (refused.value.hint or "")
    done = start_failure(tmp_path, url)
    assert done.returncode == 1 and "permission denied" in done.stderr and "GRANT CREATE" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_store_url_must_be_postgresql(tmp_path: Path) -> None:
    done = start_failure(tmp_path, "mysql://root@127.0.0.1/caxton")
    assert done.returncode == 1 and "store.url: must be a postgresql:// URL" in done.stderr


def test_caxton_backups_refuse_a_postgres_store_and_say_what_to_use(tmp_path: Path, pg_url: str) -> None:
    from caxton.engine import backup

    store = Store.open(tmp_path, pg_url)
    try:
        with pytest.raises(CaxtonError) as refused:
            backup.create(store, None, tmp_path / "b.tar.gz")
    finally:
        store.close()
    assert refused.value.http_status == 409 and "PostgreSQL" in refused.value.message
    assert "pg_dump" in (refused.value.hint or "") and not (tmp_path / "b.tar.gz").exists()
