"""Real git repositories for tests (GitPython in tmp dirs): the one way the suite makes and commits them.

    repo = init_repo(root)                 # git init on branch main, with a test identity
    commit(repo, "v1")                     # git add -A && git commit; returns the commit's hexsha
    commit(repo, "v2", ["agents/a.md"])    # only these paths (what .gitignore would skip too)
    desired_repo                           # fixture: the quickstart as a repository (DesiredRepo)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest

from tests.support.paths import EXAMPLES


def init_repo(root: Path, branch: str = "main") -> git.Repo:
    """``git init ROOT`` on ``branch`` with user.name/user.email set, so commits need no global git config."""
    repo = git.Repo.init(root, initial_branch=branch)
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.com")
    return repo


def commit(repo: git.Repo, message: str, paths: list[str] | None = None) -> str:
    """Stage ``paths`` (every change when None) and commit them; returns the new commit's hexsha."""
    if paths is None:
        repo.git.add(A=True)
    else:
        repo.index.add(paths)
    return str(repo.index.commit(message).hexsha)


class DesiredRepo:
    """A git repository (GitPython) holding a copy of the quickstart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(EXAMPLES / "agents", root / "agents")
        shutil.copytree(EXAMPLES / "wasm", root / "wasm")
        self.repo = init_repo(root)
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
        return commit(self.repo, message)


@pytest.fixture
def desired_repo(tmp_path: Path) -> DesiredRepo:
    return DesiredRepo(tmp_path / "repo")
