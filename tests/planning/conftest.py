"""Fixtures for plan/apply end-to-end tests: a desired-state git repo and a real engine subprocess."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from tests.support.engine import EngineProcess, running_engine
from tests.support.paths import EXAMPLES


class DesiredRepo:
    """A git repository (GitPython) holding a copy of the quickstart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(EXAMPLES / "agents", root / "agents")
        shutil.copytree(EXAMPLES / "wasm", root / "wasm")
        self.repo = git.Repo.init(root, initial_branch="main")
        with self.repo.config_writer() as config:
            config.set_value("user", "name", "Test")
            config.set_value("user", "email", "test@example.com")
        self.commit("initial agents")

    @property
    def agents(self) -> Path:
        return self.root / "agents"

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def commit(self, message: str) -> str:
        self.repo.git.add(A=True)
        return str(self.repo.index.commit(message).hexsha)


@pytest.fixture
def desired_repo(tmp_path: Path) -> DesiredRepo:
    return DesiredRepo(tmp_path / "repo")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    with running_engine(tmp_path) as process:
        yield process
