"""``caxton init [DIR]`` scaffolds a desired-state repository that validates, ignores ``.caxton/`` and plan
files, validates on commit and plans/applies in CI (pinned actions, least permissions); it never overwrites.
The quickstart ignores the same."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from syrupy.assertion import SnapshotAssertion

from caxton.cli import init as init_cli
from caxton.cli import usage
from caxton.client import status as status_api
from tests.conftest import CliResult
from tests.support import cli_args
from tests.support.engine import running_engine
from tests.support.git import init_repo
from tests.support.paths import EXAMPLES, REPO_ROOT, python_path


def test_init_writes_a_repository_that_validates(run_cli: Callable[..., CliResult], tmp_path: Path,
                                                 snapshot: SnapshotAssertion, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    made = run_cli("init", "my-agents")
    assert made.code == 0 and made.err == ""
    assert made.out == snapshot(name="output")
    root = tmp_path / "my-agents"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(init_cli.FILES)
    for relative, text in init_cli.FILES.items():
        assert (root / relative).read_text() == text

    monkeypatch.chdir(root)
    validated = run_cli("validate", "--strict", "--output", "json")
    assert validated.code == 0, validated.out + validated.err
    report = json.loads(validated.out)
    assert report["summary"]["agents"] == 1 and report["summary"]["errors"] == 0
    assert report["summary"]["warnings"] == 0


def test_init_in_the_current_directory_and_as_json(run_cli: Callable[..., CliResult], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    made = run_cli("init", "--output", "json")
    assert made.code == 0
    assert json.loads(made.out) == {"directory": str(tmp_path), "files": list(init_cli.FILES)}
    assert run_cli("validate").code == 0


@pytest.mark.parametrize("existing", list(init_cli.FILES))
def test_init_refuses_to_overwrite_and_writes_nothing(run_cli: Callable[..., CliResult], tmp_path: Path,
                                                      existing: str) -> None:
    (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / existing).write_text("mine\n")
    refused = run_cli("init", str(tmp_path))
    assert refused.code == 1 and refused.out == ""
    assert refused.err == (f"error: {tmp_path} already has {existing}; nothing was written\n"
                           "  hint: run `caxton init` in a new directory, or move those files away first\n")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / existing]
    assert (tmp_path / existing).read_text() == "mine\n"


def test_init_refuses_a_file_as_directory(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    refused = run_cli("init", str(tmp_path / "taken"))
    assert refused.code == 1 and "exists and is not a directory" in refused.err


@pytest.mark.parametrize("root", ["init", "quickstart"])
def test_caxton_data_and_plan_files_are_ignored_by_git(run_cli: Callable[..., CliResult], tmp_path: Path,
                                                       root: str) -> None:
    repo_dir = tmp_path / "repo"
    if root == "init":
        assert run_cli("init", str(repo_dir)).code == 0
    else:
        repo_dir.mkdir()
        (repo_dir / ".gitignore").write_bytes((EXAMPLES / ".gitignore").read_bytes())
    repo = init_repo(repo_dir)
    candidates = [".caxton/caxton.db", ".caxton/sources/x/HEAD", "caxton.plan.json", "agents/release.plan.json",
                  "caxton.yaml", "agents/assistant.md", "plan.json.md"]
    for relative in candidates:
        (repo_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / relative).touch()
    assert (repo_dir / ".gitignore").read_text() == init_cli.GITIGNORE  # one convention, written once
    ignored = set(repo.ignored(*candidates))
    assert ignored == {".caxton/caxton.db", ".caxton/sources/x/HEAD", "caxton.plan.json", "agents/release.plan.json"}


def test_the_pre_commit_hook_validates_the_agents_of_the_repository(tmp_path: Path) -> None:
    config = yaml.safe_load(init_cli.PRE_COMMIT)
    (hook,) = [h for repo in config["repos"] for h in repo["hooks"]]
    assert hook["id"] == "caxton-validate" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    assert all(files.search(p) for p in ("caxton.yaml", "agents/assistant.md", "agents/x.toml", "wasm/a.wasm"))
    assert not any(files.search(p) for p in ("docs/agents/guide.md", "README.md", "agents/notes.txt"))

    subprocess.run([sys.executable, "-m", "caxton", "init", str(tmp_path)], check=True, env=_env())
    duplicate = (tmp_path / "agents" / "assistant.md").read_text()
    (tmp_path / "agents" / "copy.md").write_text(duplicate)
    entry = hook["entry"].split()
    assert entry[0] == "caxton"
    run = subprocess.run([sys.executable, "-m", *entry], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert run.returncode == 1 and "assistant" in run.stdout + run.stderr  # one name in two files is an error


def _workflow() -> dict[Any, Any]:
    workflow: dict[Any, Any] = yaml.safe_load(init_cli.WORKFLOW)
    return workflow


def _steps(job: str) -> dict[str, dict[str, Any]]:
    return {step.get("name", step.get("uses")): step for step in _workflow()["jobs"][job]["steps"]}


def test_the_shipped_workflow_is_the_one_init_writes() -> None:
    assert (REPO_ROOT / "deploy" / "github" / "caxton.yml").read_text() == init_cli.WORKFLOW


def test_the_ci_workflow_pins_its_actions_and_asks_for_least_permissions() -> None:
    workflow = _workflow()
    assert workflow[True] == {"push": {"branches": ["main"]}, "pull_request": None}  # YAML 1.1 reads `on` as true
    assert workflow["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in workflow["jobs"].values())
    pinned = re.findall(r"^ +- uses: (\S+) # (\S+)$", init_cli.WORKFLOW, re.MULTILINE)
    used = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert [action for action, _ in pinned] == used and len(used) == 4
    for action, release in pinned:
        assert re.fullmatch(r"actions/[a-z-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"v\d+\.\d+\.\d+", release), release
    for job in ("plan", "apply"):
        assert _steps(job)[used[0]]["with"] == {"persist-credentials": False}
    apply = workflow["jobs"]["apply"]
    assert apply["needs"] == "plan" and apply["if"].startswith("github.event_name == 'push'")
    assert apply["concurrency"] == {"group": "caxton-apply", "cancel-in-progress": False}  # queued, never cancelled


def test_caxtons_own_ci_pins_its_actions_too() -> None:
    text = (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert yaml.safe_load(text)["permissions"] == {"contents": "read"}
    uses = re.findall(r"^ +- uses: (.*)$", text, re.MULTILINE)
    assert uses and all(re.fullmatch(r"actions/[a-z-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", u) for u in uses)
    assert set(uses) <= set(re.findall(r"^ +- uses: (.*)$", init_cli.WORKFLOW, re.MULTILINE))  # the same releases


def test_every_caxton_command_of_the_ci_workflow_parses_with_the_cli() -> None:
    commands = [args for job in _workflow()["jobs"].values() for step in job["steps"] if "run" in step
                for args in cli_args.commands_in_shell(step["run"])]
    assert commands == [["validate", "--output", "github"], ["plan", "--output", "markdown", "--detailed-exitcode"],
                        ["apply", "--auto-approve"]]
    assert [cli_args.parse(args) for args in commands] == [["validate"], ["plan"], ["apply"]]
    with pytest.raises(usage.UsageError):  # the check has teeth: a misspelt value does not parse
        cli_args.parse(["plan", "--output", "markdwon"])


def test_the_ci_workflow_validates_plans_into_the_summary_and_applies(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    subprocess.run([sys.executable, "-m", "caxton", "init", str(root)], check=True, env=_env())
    assert (root / ".github" / "workflows" / "caxton.yml").read_text() == init_cli.WORKFLOW
    steps = {**_steps("plan"), **_steps("apply")}

    with running_engine(tmp_path, env={"CAXTON_MEMORY_ENABLED": "false"}) as engine:
        summary = tmp_path / "step-summary.md"

        def step(name: str) -> str:
            """Run the step's script as the runner would (bash -e); return what it added to the job summary."""
            summary.write_text("")
            env = _env(CAXTON_ENGINE_URL=engine.url, GITHUB_STEP_SUMMARY=str(summary))
            done = subprocess.run(["bash", "-e", "-c", steps[name]["run"]], cwd=root, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, f"{name}: {done.stdout}\n{done.stderr}"
            return summary.read_text()

        step("validate")
        planned = step("plan")
        assert planned.startswith("### Caxton plan\n\n**Plan: 1 to create, 0 to update, 0 to delete.**\n")
        assert "| `+` | `assistant` | config | create | 0.1.0 | immediate | not on the engine |" in planned
        step("apply")
        with engine.client() as client:
            assert [(a.id, a.version) for a in status_api.state(client).agents] == [("assistant", "0.1.0")]
        assert "**No changes. The engine matches the desired state.**" in step("plan")
        step("apply")  # nothing to do: exit 0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = python_path(env)
    env["CAXTON_CACHE_DIR"] = os.environ.get("CAXTON_CACHE_DIR", "")
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}
