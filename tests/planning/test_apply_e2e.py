"""plan and apply end to end: the real CLI (in-process) against a real engine subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from caxton.client import agents as agent_api
from caxton.client import status as status_api
from tests.conftest import CliResult
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo

Run = Any  # the run_cli fixture


def plan(run_cli: Run, engine: EngineProcess, directory: Path, *extra: str) -> CliResult:
    return run_cli("plan", str(directory), "--engine", engine.url, *extra)


def apply(run_cli: Run, engine: EngineProcess, target: Path | str, *extra: str) -> CliResult:
    return run_cli("apply", str(target), "--engine", engine.url, *extra)


def states(engine: EngineProcess) -> dict[str, tuple[str, int]]:
    with engine.client() as client:
        return {a.id: (a.state, a.revision) for a in status_api.state(client).agents}


def converge(run_cli: Run, engine: EngineProcess, repo: DesiredRepo) -> None:
    result = apply(run_cli, engine, repo.agents, "--auto-approve")
    assert result.code == 0, result.err


@pytest.fixture
def engine(engine_proc_no_memory: EngineProcess) -> EngineProcess:
    """The engine these tests plan and apply against: vector memory off (none of them stores memories, and its
    model costs CPU at every start); a default engine applies the quickstart in tests/test_readme.py."""
    return engine_proc_no_memory


def test_create_then_no_changes(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo) -> None:
    first = plan(run_cli, engine, desired_repo.agents, "--detailed-exitcode")
    assert first.code == 2, first.err
    assert "Plan: 4 to create, 0 to update, 0 to delete." in first.out
    result = apply(run_cli, engine, desired_repo.agents, "--auto-approve")
    assert result.code == 0, result.err
    assert "Apply succeeded" in result.out
    assert states(engine) == {"data-processor": ("Active", 1), "scorer": ("Running", 1), "summarizer": ("Active", 1),
                                   "word-count": ("Running", 1)}
    with engine.client() as client:
        assert agent_api.send(client, "scorer", {"hello": "world"}).reply["agent"] == "scorer"
    again = plan(run_cli, engine, desired_repo.agents, "--detailed-exitcode")
    assert again.code == 0, again.err
    assert "No changes" in again.out


def test_update_is_a_hot_reload(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo) -> None:
    converge(run_cli, engine, desired_repo)
    desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "1.1.0"')
    shown = plan(run_cli, engine, desired_repo.agents)
    assert '~ agent "summarizer" (config) 0.3.1 -> 1.1.0' in shown.out
    assert "Plan: 0 to create, 1 to update, 0 to delete." in shown.out
    assert apply(run_cli, engine, desired_repo.agents, "--auto-approve").code == 0
    assert states(engine)["summarizer"] == ("Active", 2)


def test_saved_plan_applies_exactly_and_goes_stale(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo,
                                                   tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    made = plan(run_cli, engine, desired_repo.agents, "--out", str(plan_file), "--detailed-exitcode")
    assert made.code == 2
    saved = json.loads(plan_file.read_text())
    assert saved["format_version"] == 1 and saved["engine_serial"] == 0
    assert apply(run_cli, engine, plan_file).code == 0
    # the same plan again: the engine moved on
    stale = apply(run_cli, engine, plan_file)
    assert stale.code == 1
    assert ("plan is stale: agent(s) data-processor, scorer, summarizer, word-count changed on the engine since it "
            "was made; "
            "run plan again") in stale.err
    # a plan whose files changed afterwards
    plan(run_cli, engine, desired_repo.agents, "--out", str(plan_file))
    desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "1.0.1"')
    changed = apply(run_cli, engine, plan_file)
    assert changed.code == 1 and "the desired state changed since it was made" in changed.err


def test_replace_and_delete(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo) -> None:
    converge(run_cli, engine, desired_repo)
    (desired_repo.agents / "summarizer.toml").unlink()
    desired_repo.write("agents/data-processor.md", (desired_repo.agents / "scorer.md").read_text()
                       .replace("name: scorer", "name: DataProcessor"))
    shown = plan(run_cli, engine, desired_repo.agents)
    assert '-/+ agent "data-processor" (wasm)' in shown.out
    assert '  - agent "summarizer" (config)' in shown.out
    assert "Plan: 0 to create, 0 to update, 1 to delete, 1 to replace." in shown.out
    assert apply(run_cli, engine, desired_repo.agents, "--auto-approve").code == 0
    final = states(engine)
    assert set(final) == {"data-processor", "scorer", "word-count"}
    with engine.client() as client:
        assert status_api.state(client).agents[0].kind == "wasm"


def test_delete_all_is_refused_and_no_prune(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo,
                                            tmp_path: Path) -> None:
    converge(run_cli, engine, desired_repo)
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = plan(run_cli, engine, empty)
    assert refused.code == 1 and "--allow-delete-all" in refused.err
    (desired_repo.agents / "summarizer.toml").unlink()
    kept = plan(run_cli, engine, desired_repo.agents, "--no-prune", "--detailed-exitcode")
    assert kept.code == 0, kept.out


def test_drift_is_shown_and_corrected(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo) -> None:
    converge(run_cli, engine, desired_repo)
    with engine.client() as client:
        agent_api.suspend(client, "summarizer")
    shown = plan(run_cli, engine, desired_repo.agents, "--detailed-exitcode")
    assert shown.code == 2
    assert "[drift]" in shown.out and "(state): \"Suspended\" -> \"Active\"" in shown.out
    assert apply(run_cli, engine, desired_repo.agents, "--auto-approve").code == 0
    assert states(engine)["summarizer"][0] == "Active"


def test_invalid_desired_state_stops_the_plan(run_cli: Run, engine: EngineProcess,
                                              desired_repo: DesiredRepo) -> None:
    desired_repo.write("agents/broken.md", "---\nname: broken\nversion: one\n---\n")
    result = plan(run_cli, engine, desired_repo.agents)
    assert result.code == 1
    assert "broken.md" in result.err and "nothing was planned" in result.err
    assert states(engine) == {}


def test_secrets_are_redacted_in_plan_output(run_cli: Run, engine: EngineProcess,
                                             desired_repo: DesiredRepo) -> None:
    converge(run_cli, engine, desired_repo)
    desired_repo.edit("agents/summarizer.toml", "[parameters]", '[parameters]\napi_key = "sk-live-0123456789abcdefghij"')
    text = plan(run_cli, engine, desired_repo.agents).out
    as_json = plan(run_cli, engine, desired_repo.agents, "--output", "json").out
    assert "(sensitive)" in text and "(sensitive)" in as_json
    assert "sk-live-0123456789abcdefghij" not in text + as_json


def test_lock_contention_fails_fast_with_the_holder(run_cli: Run, engine: EngineProcess,
                                                    desired_repo: DesiredRepo) -> None:
    with engine.client() as client:
        client.request("POST", "/lock", json={"holder": "ci-job-42", "reason": "deploy prod", "ttl": 60})
    result = apply(run_cli, engine, desired_repo.agents, "--auto-approve")
    assert result.code == 1
    assert "ci-job-42" in result.err and "deploy prod" in result.err
    status = run_cli("lock", "status", "--engine", engine.url)
    assert "held by ci-job-42" in status.out
    assert run_cli("lock", "release", "--engine", engine.url).code == 1  # needs --force
    assert run_cli("lock", "release", "--force", "--engine", engine.url).code == 0
    assert apply(run_cli, engine, desired_repo.agents, "--auto-approve").code == 0


def test_expired_lease_frees_itself(engine: EngineProcess) -> None:
    with engine.client() as client:
        client.request("POST", "/lock", json={"holder": "dead-job", "ttl": 1})
        time.sleep(1.2)
        assert client.request("GET", "/lock")["held"] is False
        taken = client.request("POST", "/lock", json={"holder": "next", "ttl": 5})
        assert taken["lease"]["holder"] == "next"


def test_no_terminal_needs_auto_approve(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    result = apply(run_cli, engine, desired_repo.agents)
    assert result.code == 1 and "--auto-approve" in result.err
    assert states(engine) == {}


def test_json_progress_is_one_event_per_line(run_cli: Run, engine: EngineProcess,
                                             desired_repo: DesiredRepo) -> None:
    result = apply(run_cli, engine, desired_repo.agents, "--auto-approve", "--output", "json")
    events = [json.loads(line) for line in result.out.splitlines()]
    assert [e["event"] for e in events][0] == "plan" and events[-1]["event"] == "outcome"
    assert events[-1]["status"] == "succeeded"
    progress = [e for e in events if e["event"] == "progress" and e["agent"]]
    assert {e["agent"] for e in progress} == {"data-processor", "scorer", "summarizer", "word-count"}


def test_history_and_rollback(run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo) -> None:
    converge(run_cli, engine, desired_repo)
    desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "2.0.0"')
    converge(run_cli, engine, desired_repo)
    listed = run_cli("history", "summarizer", "--engine", engine.url, "--output", "json")
    revisions = json.loads(listed.out)["revisions"]
    assert [(r["revision"], r["version"], r["outcome"]) for r in revisions] == [
        (2, "2.0.0", "serving"), (1, "0.3.1", "superseded")]
    back = run_cli("rollback", "summarizer", "--to-version", "0.3.1", "--engine", engine.url)
    assert back.code == 0, back.err
    with engine.client() as client:
        live = {a.id: a for a in status_api.state(client).agents}["summarizer"]
    assert live.version == "0.3.1" and live.revision == 3
    drift = plan(run_cli, engine, desired_repo.agents, "--detailed-exitcode")
    assert drift.code == 2 and "0.3.1 -> 2.0.0" in drift.out
    missing = run_cli("rollback", "summarizer", "--to-version", "9.9.9", "--engine", engine.url)
    assert missing.code == 1 and "kept revisions" in missing.err


def test_unreachable_engine_is_one_clear_line(run_cli: Run, desired_repo: DesiredRepo) -> None:
    result = run_cli("plan", str(desired_repo.agents), "--engine", "http://127.0.0.1:9")
    assert result.code == 1
    assert "cannot reach the engine at http://127.0.0.1:9" in result.err
    assert "Traceback" not in result.err


def test_killed_cli_mid_apply_engine_still_converges(engine: EngineProcess, desired_repo: DesiredRepo) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "caxton", "apply", str(desired_repo.agents), "--auto-approve",
                             "--engine", engine.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    with engine.client() as client:
        while status_api.state(client).serial == 0 and time.monotonic() < deadline:  # the engine started applying
            time.sleep(0.005)
        proc.kill()
        proc.wait(10)
        while time.monotonic() < deadline:
            if {a.state for a in status_api.state(client).agents} == {"Active", "Running"} and len(status_api.state(client).agents) == 4:
                break
            time.sleep(0.05)
    assert states(engine) == {"data-processor": ("Active", 1), "scorer": ("Running", 1), "summarizer": ("Active", 1),
                                   "word-count": ("Running", 1)}


def test_messages_during_ten_reloads_all_answered(run_cli: Run, engine: EngineProcess,
                                                  desired_repo: DesiredRepo) -> None:
    converge(run_cli, engine, desired_repo)
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def sender() -> None:
        nonlocal answered
        with engine.client() as client:
            while not stop.is_set():
                try:
                    agent_api.send(client, "summarizer", "ping", conversation_id="c1")
                    answered += 1
                except Exception as error:  # noqa: BLE001 - every failure is recorded
                    failures.append(repr(error))

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        for n in range(1, 11):
            desired_repo.edit("agents/summarizer.toml", f'version = "1.{n - 1}.0"' if n > 1 else 'version = "0.3.1"',
                              f'version = "1.{n}.0"')
            result = apply(run_cli, engine, desired_repo.agents, "--auto-approve")
            assert result.code == 0, result.err
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert answered > 10
    assert states(engine)["summarizer"] == ("Active", 11)


def test_plan_without_a_directory_uses_the_projects_agents_dir(
    run_cli: Run, engine: EngineProcess, desired_repo: DesiredRepo, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (desired_repo.root / "agents").rename(desired_repo.root / "desired")
    desired_repo.write("caxton.yaml", "agents_dir: desired\n")
    monkeypatch.chdir(desired_repo.root)
    result = run_cli("plan", "--engine", engine.url, "--detailed-exitcode")
    assert result.code == 2, result.err
    assert "Plan: 4 to create, 0 to update, 0 to delete." in result.out
    (desired_repo.root / "caxton.yaml").unlink()
    missing = run_cli("plan", "--engine", engine.url)
    assert missing.code == 1
    assert "no caxton.yaml or agents/ directory here" in missing.err
