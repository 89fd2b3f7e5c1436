"""Hostile trees: a FIFO named ``x.md``, symlink loops, symlinks out of the root, nesting 50,000 deep
and file names that hold a newline. ``caxton validate`` runs for real (a fresh process, as CI runs
it): each bad file is one diagnostic of its own, every other file is still reported, exit 1, and no
output format lets a file name forge a line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from tests.cli.conftest import child_env
from tests.support.git import commit, init_repo
from tests.validation.conftest import VALID_MD, write_repo

DEEP = 50_000
AGENT_TOML = 'name = "{name}"\nversion = "1.0.0"\nsystem_prompt = "You help."\n'
AGENT_MD = '---\nname: {name}\nversion: "1.0.0"\nsystem_prompt: "You help."\n{extra}---\n'


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m caxton ARGS`` in ``cwd``; the timeout turns a hang (a FIFO opened) into a failure."""
    return subprocess.run([sys.executable, "-m", "caxton", *args], cwd=cwd, capture_output=True, text=True,
                          env=child_env(), timeout=60, check=False)


def hostile_files() -> dict[str, str]:
    """Agent files nested 50,000 deep (TOML, flow YAML, JSON frontmatter) and 100 deep (block YAML)."""
    block = "parameters:\n" + "".join(" " * i + "a:\n" for i in range(1, 100)) + " " * 100 + "x\n"
    return {
        "agents/good.md": VALID_MD,
        "agents/deep.toml": AGENT_TOML.format(name="deep-toml") + "[parameters]\na = " + "[" * DEEP + "]" * DEEP
        + "\n",
        "agents/flow.md": AGENT_MD.format(name="flow", extra="parameters: {a: " + "[" * DEEP + "]" * DEEP + "}\n"),
        "agents/json.md": '---\n{"name": "json", "version": "1.0.0", "system_prompt": "hi", "parameters": '
        + '{"a": ' * DEEP + "1" + "}" * DEEP + "}\n---\n",
        "agents/block.md": AGENT_MD.format(name="block", extra=block),
    }


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    root = write_repo(tmp_path / "repo", hostile_files())
    agents = root / "agents"
    os.mkfifo(agents / "x.md")
    os.symlink("loop-b.md", agents / "loop-a.md")
    os.symlink("loop-a.md", agents / "loop-b.md")
    os.symlink("self.toml", agents / "self.toml")
    outside = tmp_path / "outside.md"
    outside.write_text(VALID_MD.replace("alpha", "outsider"), "utf-8")
    os.symlink(outside, agents / "out.md")
    os.symlink("gone.md", agents / "dangling.md")
    return root


EXPECTED = {
    "agents/block.md": "CX116", "agents/dangling.md": "CX101", "agents/deep.toml": "CX116",
    "agents/flow.md": "CX116", "agents/json.md": "CX116", "agents/loop-a.md": "CX109",
    "agents/loop-b.md": "CX109", "agents/out.md": "CX402", "agents/self.toml": "CX109", "agents/x.md": "CX108",
}


def test_each_hostile_file_is_one_diagnostic_and_the_rest_is_validated(hostile: Path) -> None:
    result = cli(hostile, "validate", ".", "--output", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    found = {d["file"]: d["code"] for d in report["diagnostics"]}
    assert found == EXPECTED
    assert all(d["severity"] == "error" for d in report["diagnostics"])
    assert [a["name"] for a in report["agents"]] == ["alpha"], "the good file is still validated"
    assert "internal error" not in result.stderr


def test_hostile_tree_text_output(hostile: Path, snapshot: SnapshotAssertion) -> None:
    result = cli(hostile, "validate", ".")
    assert result.returncode == 1
    assert result.stdout == snapshot
    assert result.stderr == "invalid: 1 agent(s), 10 error(s), 0 warning(s), 0 note(s)\n"


def test_a_fifo_caxton_yaml_is_a_diagnostic_not_a_hang(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "agents").mkdir(parents=True)
    (root / "agents" / "a.md").write_text(VALID_MD, "utf-8")
    os.mkfifo(root / "caxton.yaml")
    result = cli(root, "validate", ".", "--output", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [(d["file"], d["code"]) for d in report["diagnostics"]] == [("caxton.yaml", "CX108")]
    assert [a["name"] for a in report["agents"]] == ["alpha"]


def test_symlink_loops_committed_to_git_are_diagnostics_at_a_ref(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"agents/good.md": VALID_MD,
                                          "agents/deep.toml": AGENT_TOML.format(name="deep") + "[parameters]\n"
                                          "a = " + "[" * DEEP + "]" * DEEP + "\n"})
    os.symlink("loop-b.md", root / "agents" / "loop-a.md")
    os.symlink("loop-a.md", root / "agents" / "loop-b.md")
    commit(init_repo(root), "hostile", ["caxton.yaml", "agents/good.md", "agents/deep.toml", "agents/loop-a.md",
                                        "agents/loop-b.md"])
    result = cli(root, "validate", ".", "--ref", "HEAD", "--output", "json")
    assert result.returncode == 1, result.stderr
    found = {d["file"]: d["code"] for d in json.loads(result.stdout)["diagnostics"]}
    assert found == {"agents/deep.toml": "CX116", "agents/loop-a.md": "CX109", "agents/loop-b.md": "CX109"}


NEWLINE_NAME = "a\n::error file=agents/x.md,line=1::forged, b.md"


@pytest.fixture
def newline_named(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo", {f"agents/{NEWLINE_NAME}": AGENT_MD.format(name="nl", extra="toolz: []\n"),
                                          "agents/ok\x1b[31m.md": AGENT_MD.format(name="esc", extra="toolz: []\n")})


def test_text_output_escapes_file_names(newline_named: Path, snapshot: SnapshotAssertion) -> None:
    result = cli(newline_named, "validate", ".")
    assert result.returncode == 1
    assert result.stdout == snapshot
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.startswith("  hint:")] == [
        "agents/a\\n::error file=agents/x.md,line=1::forged, b.md:5:1: error CX202: unknown field 'toolz'",
        "agents/ok\\x1b[31m.md:5:1: error CX202: unknown field 'toolz'"]


def test_github_output_escapes_file_names(newline_named: Path, snapshot: SnapshotAssertion) -> None:
    result = cli(newline_named, "validate", ".", "--output", "github")
    assert result.returncode == 1
    assert result.stdout == snapshot
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("::error file=agents/a%0A%3A%3Aerror file=agents/x.md%2Cline=1")
    assert all(line.count("::") == 2 for line in lines), "only the command's own separators"


def test_json_and_sarif_keep_the_name_exact(newline_named: Path) -> None:
    report = json.loads(cli(newline_named, "validate", ".", "--output", "json").stdout)
    assert [d["file"] for d in report["diagnostics"]] == [f"agents/{NEWLINE_NAME}", "agents/ok\x1b[31m.md"]
    sarif = json.loads(cli(newline_named, "validate", ".", "--output", "sarif").stdout)
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]]
    assert uris == ["agents/a%0A%3A%3Aerror%20file%3Dagents/x.md%2Cline%3D1%3A%3Aforged%2C%20b.md",
                    "agents/ok%1B%5B31m.md"]


def test_plan_on_a_hostile_tree_reports_every_file_and_exits_1(hostile: Path, tmp_path: Path) -> None:
    """``caxton plan`` against a real engine: the same per-file diagnostics on stderr, no plan, exit 1."""
    from tests.support.engine import running_engine

    with running_engine(tmp_path / "engine") as engine:
        result = cli(hostile, "plan", ".", "--engine", engine.url)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    for file, code in EXPECTED.items():
        assert f"{file}" in result.stderr and f"error {code}:" in result.stderr, (file, code, result.stderr)
    assert "internal error" not in result.stderr
