"""Sources: which revision is current, what is planned, and credentials kept out of every message."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import git
import pytest

from caxton.errors import GitError, InvalidInput
from caxton.reconcile import remote, sources
from tests.reconcile.conftest import wait_for
from tests.support.git import DesiredRepo
from tests.support.paths import free_port


def test_urls_and_paths_are_told_apart() -> None:
    assert sources.is_url("https://example.com/org/agents.git")
    assert sources.is_url("file:///srv/agents.git")
    assert sources.is_url("git@example.com:org/agents.git")
    assert not sources.is_url("agents")
    assert not sources.is_url("/srv/agents")
    assert not sources.is_url("./dir:with:colons")


def test_a_git_work_tree_is_read_at_its_branch_head(desired_repo: DesiredRepo, tmp_path: Path) -> None:
    source = sources.open_source(str(desired_repo.root), branch=None, path=None, data_dir=tmp_path / "data")
    assert source.kind == "git" and source.branch == "main"
    first = source.current()
    assert first == desired_repo.repo.head.commit.hexsha
    assert source.location(first) == (str(desired_repo.root), first)
    desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.4.0"')
    assert source.current() == first, "uncommitted edits are not a new revision"
    second = desired_repo.commit("bump summarizer")
    assert source.current() == second != first


def test_an_unknown_branch_is_refused(desired_repo: DesiredRepo, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="branch 'release' not found"):
        sources.open_source(str(desired_repo.root), branch="release", path=None, data_dir=tmp_path)


def test_the_git_watcher_wakes_on_a_commit(desired_repo: DesiredRepo, tmp_path: Path) -> None:
    source = sources.open_source(str(desired_repo.root), branch=None, path=None, data_dir=tmp_path, poll=0.05)
    woke = threading.Event()
    stop = threading.Event()
    watcher = threading.Thread(target=source.watch, args=(woke.set, stop), daemon=True)
    watcher.start()
    try:
        assert not woke.wait(0.3), "nothing changed yet"
        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.4.0"')
        desired_repo.commit("bump")
        assert woke.wait(5.0)
    finally:
        stop.set()
        watcher.join(5.0)


def test_a_plain_directory_is_watched_and_fingerprinted_by_content(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "quickstart", project)
    source = sources.open_source(str(project), branch=None, path="agents", data_dir=tmp_path / "data")
    assert source.kind == "dir"
    before = source.current()
    assert source.location(before) == (str(project / "agents"), None)
    woke = threading.Event()
    stop = threading.Event()
    watcher = threading.Thread(target=source.watch, args=(woke.set, stop), daemon=True)
    watcher.start()
    try:
        wait_for(lambda: (project / "agents" / "summarizer.toml").touch() or woke.is_set(), 10.0, "a file event")
        assert source.current() == before, "touching a file changes no content"
        text = (project / "agents" / "summarizer.toml").read_text()
        (project / "agents" / "summarizer.toml").write_text(text.replace('"0.3.1"', '"0.3.2"'))
        assert source.current() != before
    finally:
        stop.set()
        watcher.join(5.0)


def test_a_branch_is_refused_for_a_plain_directory(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    with pytest.raises(InvalidInput, match="--branch"):
        sources.open_source(str(tmp_path), branch="main", path=None, data_dir=tmp_path / "data")


def test_a_remote_is_cloned_into_the_data_dir_and_fetched(desired_repo: DesiredRepo, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git.Repo.clone_from(str(desired_repo.root), bare, bare=True)
    data = tmp_path / "data"
    source = sources.open_source(f"file://{bare}", branch="main", path="agents", data_dir=data)
    assert source.kind == "remote"
    first = source.current()
    assert first == desired_repo.repo.head.commit.hexsha
    path, ref = source.location(first)
    assert Path(path).parent.parent == data / "sources" and ref == first
    desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.5.0"')
    second = desired_repo.commit("bump")
    desired_repo.repo.git.push(str(bare), "main")
    assert source.current() == second
    source.close()


def test_credentials_never_appear_in_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(remote.TOKEN_ENV, "env-s3cret-token")
    url = f"http://robot:url-s3cret@127.0.0.1:{free_port()}/agents.git"
    source = sources.open_source(url, branch="main", path=None, data_dir=tmp_path)
    assert "s3cret" not in source.description
    with pytest.raises(GitError) as raised:
        source.current()
    text = f"{raised.value.message} {raised.value.hint}"
    assert "git clone of http://127.0.0.1" in text
    assert "s3cret" not in text


def test_the_token_travels_as_a_header_in_the_environment() -> None:
    env = remote.git_environment("https://git.example.com/a.git", None, None, env={remote.TOKEN_ENV: "tok"})
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == "Authorization: Basic eC1hY2Nlc3MtdG9rZW46dG9r"  # x-access-token:tok
    assert "GIT_CONFIG_COUNT" not in remote.git_environment("git@example.com:a.git", None, None, env={})
    assert remote.split_credentials("https://u:p%40ss@h/r.git") == ("https://h/r.git", "u", "p@ss")
    assert remote.redact("fatal: https://u:p@h/r.git and tok", ("tok",)) == "fatal: https://***@h/r.git and ***"
