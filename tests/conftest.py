"""Fixtures shared by every test area (areas keep their own in tests/<area>/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from caxton.cli import main as cli_main


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
