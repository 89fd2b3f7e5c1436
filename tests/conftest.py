"""Fixtures shared by every test area (areas keep their own in tests/<area>/conftest.py).

Each shared fixture has one meaning wherever it is used (they live in tests/support):
    engine_inproc, make_engine_inproc      an ``Engine`` started in this process (support/engine_inproc.py)
    engine_proc, engine_proc_no_memory,    a real ``caxton server start`` subprocess, an ``EngineProcess``
    module_engine_proc                     (support/engine.py); per-module variants keep names saying what
                                           they are (``llm_engine``, ``small_tmpfs_engine``, ...)
    desired_repo                           the quickstart as a git repository (support/git.py)
    run_cli                                ``caxton ARGS...`` in-process (below)
    pg_server_url, pg_url                  a real PostgreSQL + pgvector server, a fresh database (support/postgres.py)
    store_url                              the state backends, parametrised: None (SQLite), a pg_url (PostgreSQL)
    replica_engines                        in-process engines on one PostgreSQL store (support/replica_engines.py)
Paths and ports: support/paths.py (``REPO_ROOT``, ``EXAMPLES``, ``free_port()``, ``python_path()``).
"""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from caxton.cli import main as cli_main
from tests.support.engine import engine_proc, engine_proc_no_memory, module_engine_proc  # noqa: F401  (fixtures)
from tests.support.engine_inproc import engine_inproc, make_engine_inproc  # noqa: F401  (fixtures)
from tests.support.git import desired_repo  # noqa: F401  (fixture)
from tests.support.openai_server import openai_server  # noqa: F401  (fixture)
from tests.support.paths import REPO_ROOT
from tests.support.postgres import pg_server_url, pg_url, store_url  # noqa: F401  (fixtures)
from tests.support.replica_engines import replica_engines  # noqa: F401  (fixture)


def pytest_configure(config: pytest.Config) -> None:
    """Compile once what every run imports, even where ``PYTHONDONTWRITEBYTECODE`` is set.

    With it set and no ``__pycache__``, each xdist worker re-ran pytest's assertion rewriting of every test
    module (~7 CPU-s a worker, every run) and every engine and CLI subprocess recompiled the caxton modules
    it imports. Pytest now keeps its rewritten modules (``sys.dont_write_bytecode`` is read when it writes);
    the controller (or a run without xdist) compiles caxton/ and tests/support/ before any subprocess starts.
    """
    sys.dont_write_bytecode = False
    if not hasattr(config, "workerinput"):
        for package in ("caxton", "tests/support"):
            compileall.compile_dir(REPO_ROOT / package, quiet=1)


@pytest.fixture(autouse=True, scope="session")
def _validation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the CLI's validation cache out of the home directory while tests run."""
    os.environ["CAXTON_CACHE_DIR"] = str(tmp_path_factory.mktemp("validation-cache"))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``caxton ARGS...`` in-process and return exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = cli_main.main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
