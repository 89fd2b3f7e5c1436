"""Saved plans: ``caxton show PLAN`` renders one (text as `caxton plan` printed it, its JSON, markdown), and a plan
records absolute source paths, so ``caxton apply PLAN`` works from any working directory."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from caxton.client import status as status_api
from tests.conftest import CliResult
from tests.support.engine import EngineProcess
from tests.support.git import commit, init_repo
from tests.support.paths import EXAMPLES


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The quickstart as a git repository."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLES, root)
    commit(init_repo(root), "quickstart")
    return root


@pytest.fixture
def cli(run_cli: Callable[..., CliResult], engine_proc_no_memory: EngineProcess,
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    monkeypatch.setenv("CAXTON_ENGINE_URL", engine_proc_no_memory.url)
    return run_cli


def _scrub(text: str, repo: Path, engine: EngineProcess) -> str:
    text = text.replace(str(repo), "<repo>").replace(engine.url, "<engine>")
    return re.sub(r"(sha256:)?\b[0-9a-f]{12}\b", r"\1<hex>", text)


def test_show_renders_a_saved_plan_as_plan_printed_it(cli: Callable[..., CliResult], engine_proc_no_memory: EngineProcess,
                                                      repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      snapshot: SnapshotAssertion) -> None:
    monkeypatch.chdir(repo)
    saved = tmp_path / "release.plan.json"
    planned = cli("plan", "--out", str(saved))
    assert planned.code == 0, planned.err

    monkeypatch.chdir(tmp_path)
    shown = cli("show", str(saved))
    assert shown.code == 0 and shown.err == ""
    assert shown.out == planned.out
    assert _scrub(shown.out, repo, engine_proc_no_memory) == snapshot(name="text")

    as_json = cli("show", str(saved), "--output", "json")
    assert as_json.code == 0
    assert json.loads(as_json.out) == json.loads(saved.read_text())
    assert json.loads(as_json.out)["source"]["path"] == str(repo)

    monkeypatch.chdir(repo)
    as_markdown = cli("plan", "--output", "markdown")  # a new plan of the same state: the same markdown
    assert as_markdown.code == 0 and as_markdown.err == ""
    assert cli("show", str(saved), "-o", "markdown").out == as_markdown.out
    assert _scrub(as_markdown.out, repo, engine_proc_no_memory) == snapshot(name="markdown")


def test_plan_as_markdown_lists_the_desired_states_warnings(cli: Callable[..., CliResult], repo: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    agent = repo / "agents" / "data-processor.md"
    agent.write_text(agent.read_text().replace("  - file-analysis\n", "  - file-analysis\n  - file-analysis\n"))
    monkeypatch.chdir(repo)
    planned = cli("plan", "-o", "markdown")
    assert planned.code == 0, planned.err
    warnings = planned.out.split("**Warnings**\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(warnings) == 1 and re.fullmatch(r"- `agents/data-processor\.md:8:\d+`: .* \(CX308\)", warnings[0])
    assert "**Warnings**" not in cli("plan").out + cli("plan", "-o", "json").out  # text and JSON: as before


def test_show_refuses_what_is_not_a_plan(run_cli: Callable[..., CliResult], tmp_path: Path,
                                         snapshot: SnapshotAssertion) -> None:
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "future.plan.json").write_text('{"format_version": 99}')
    errors = []
    for name in ("missing.plan.json", "notes.json", "broken.json", "future.plan.json"):
        result = run_cli("show", str(tmp_path / name))
        assert result.code == 1 and result.out == ""
        errors.append(result.err.replace(str(tmp_path), "<tmp>"))
    assert errors == snapshot


def test_a_saved_plan_applies_from_any_directory(cli: Callable[..., CliResult], engine_proc_no_memory: EngineProcess,
                                                 repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    assert cli("plan", "agents", "--out", "work.plan.json").code == 0
    assert cli("plan", "agents", "--ref", "HEAD", "--out", "head.plan.json").code == 0
    assert json.loads((repo / "work.plan.json").read_text())["source"]["path"] == str(repo / "agents")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    applied = cli("apply", str(repo / "work.plan.json"))
    assert applied.code == 0, applied.err
    assert "Apply succeeded: 4 create." in applied.out
    stale = cli("apply", str(repo / "head.plan.json"))  # made against the same engine serial: now stale
    assert stale.code == 1 and "stale" in stale.err
    with engine_proc_no_memory.client() as client:
        assert sorted(a.id for a in status_api.state(client).agents) == ["data-processor", "scorer", "summarizer", "word-count"]


def test_a_plan_at_a_git_ref_applies_from_any_directory(cli: Callable[..., CliResult], engine_proc_no_memory: EngineProcess,
                                                        repo: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "agents")
    assert cli("plan", ".", "--ref", "HEAD", "--out", str(tmp_path / "head.plan.json")).code == 0
    monkeypatch.chdir(tmp_path)
    applied = cli("apply", "head.plan.json")
    assert applied.code == 0, applied.err
    assert "Apply succeeded: 4 create." in applied.out
