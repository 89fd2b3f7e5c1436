"""Fixtures of the console's browser tests: Playwright, and one engine with tokens per module.

``console_engine``: a real engine (vector memory on: the memory page) whose tokens file holds a
``reader`` (read), a ``deployer`` (deploy) and ``root`` (admin), with the quickstart applied from a git
repository (``repo``) by the deployer. ``console``: a fresh browser profile on it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.engine import EngineProcess, running_engine
from tests.support.git import DesiredRepo
from tests.support.paths import python_path
from tests.ui.browser import Console, browser_session, chromium_path

ROLES = {"reader": ["read"], "deployer": ["deploy"], "root": ["admin"]}


@dataclass
class ConsoleEngine:
    engine: EngineProcess
    tokens: dict[str, str]
    repo: DesiredRepo

    @property
    def url(self) -> str:
        return self.engine.url

    def caxton(self, *args: str, token: str = "deployer") -> subprocess.CompletedProcess[str]:
        """``caxton ARGS --engine URL --token TOKEN`` in a subprocess (the console test keeps its thread)."""
        import os

        env = {**os.environ, "PYTHONPATH": python_path(os.environ)}
        command = [sys.executable, "-m", "caxton", *args, "--engine", self.url, "--token", self.tokens[token]]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    chromium_path()  # installed before Playwright starts, so a missing browser fails with apt's reason
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def console_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleEngine]:
    from tests.security.auth_tokens import write_tokens

    root = tmp_path_factory.mktemp("console")
    tokens = write_tokens(root / "tokens.yaml", {name: (roles, None, None) for name, roles in ROLES.items()})
    (root / "caxton.yaml").write_text(yaml.safe_dump({"security": {"tokens_file": "tokens.yaml"}}))
    repo = DesiredRepo(root / "repo")
    with running_engine(root, config=root / "caxton.yaml") as engine:
        made = ConsoleEngine(engine, tokens, repo)
        applied = made.caxton("apply", str(repo.agents), "--auto-approve")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield made


@pytest.fixture
def console(playwright: Any, console_engine: ConsoleEngine, tmp_path: Path) -> Iterator[Console]:
    with browser_session(playwright, tmp_path / "profile", console_engine.url) as opened:
        yield opened
