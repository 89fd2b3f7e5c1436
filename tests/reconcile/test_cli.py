"""``caxton reconcile`` (one pass, --env waves, status, trigger), ``--watch`` under SIGTERM, and ``caxton up``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.reconcile.conftest import revisions, wait_for
from tests.reconcile.test_watch import BROKEN, status
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo
from tests.support.paths import REPO_ROOT, free_port

Run = Any  # the run_cli fixture


def reconcile(run_cli: Run, repo: DesiredRepo, *extra: str) -> Any:
    return run_cli("reconcile", "--source", str(repo.root), "--data-dir", str(repo.root.parent / "clones"), *extra)


def test_one_pass_applies_holds_invalid_and_refuses_deleting_everything(run_cli: Run, engine_proc: EngineProcess,
                                                     desired_repo: DesiredRepo) -> None:
    first = reconcile(run_cli, desired_repo, "--engine", engine_proc.url)
    assert first.code == 0, first.err
    commit = desired_repo.repo.head.commit.hexsha
    assert f"{engine_proc.url}: applied at {commit[:12]}: " in first.out
    assert "summarizer created (revision 1)" in first.out
    again = reconcile(run_cli, desired_repo, "--engine", engine_proc.url)
    assert again.code == 0 and f"{engine_proc.url}: in_sync at {commit[:12]}" in again.out

    desired_repo.write("agents/summarizer.toml", BROKEN)
    desired_repo.commit("broken")
    invalid = reconcile(run_cli, desired_repo, "--engine", engine_proc.url)
    assert invalid.code == 1
    assert "agents/summarizer.toml" in invalid.err and "error" in invalid.err
    assert "reconcile invalid" in invalid.err
    assert revisions(engine_proc)["summarizer"][1] == 1

    shown = run_cli("reconcile", "status", "--engine", engine_proc.url)
    assert shown.code == 0, shown.err
    assert "last outcome:        invalid" in shown.out
    assert f"last applied commit: {commit}" in shown.out
    assert "agents/summarizer.toml" in shown.out
    as_json = run_cli("reconcile", "status", "--engine", engine_proc.url, "-o", "json")
    assert json.loads(as_json.out)["status"]["last_outcome"] == "invalid"

    # an empty agents directory is refused by the delete-all guard, not applied
    for file in ("data-processor.md", "scorer.md", "summarizer.toml", "word-count.md"):
        (desired_repo.agents / file).unlink()
    desired_repo.write("agents/README.md", "no agents for now\n")
    desired_repo.commit("remove every agent")
    refused = reconcile(run_cli, desired_repo, "--engine", engine_proc.url)
    assert refused.code == 1
    assert "refused" in refused.err and "--allow-delete-all" in refused.err
    assert len(revisions(engine_proc)) == 4


def test_an_environment_is_a_rolling_wave_stopping_at_the_first_failure(
    run_cli: Run, engine_proc: EngineProcess, desired_repo: DesiredRepo,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    desired_repo.write("caxton.yaml", "environments:\n"
                       f"  prod:\n    engines: [{engine_proc.url}, {dead}]\n"
                       f"  reversed:\n    engines: [{dead}, {engine_proc.url}]\n")
    desired_repo.commit("environments")
    config = str(desired_repo.root / "caxton.yaml")
    blocked = reconcile(run_cli, desired_repo, "--env", "reversed", "--config", config)
    assert blocked.code == 1
    assert f"{dead}: unreachable" in blocked.out and engine_proc.url not in blocked.out
    assert revisions(engine_proc) == {}, "the wave stopped before the second engine"

    wave = reconcile(run_cli, desired_repo, "--env", "prod", "--config", config)
    assert wave.code == 1
    assert f"{engine_proc.url}: applied" in wave.out and f"{dead}: unreachable" in wave.out
    assert "1 of 2 engine(s) at this revision; stopped at " + dead in wave.err
    engines = {e["engine"]: e for e in status(engine_proc)["engines"]}
    assert engines[engine_proc.url]["commit"] == desired_repo.repo.head.commit.hexsha
    assert engines[dead]["outcome"] == "unreachable" and engines[dead]["commit"] is None

    unknown = reconcile(run_cli, desired_repo, "--env", "staging", "--config", config)
    assert unknown.code == 1 and "no environment 'staging'" in unknown.err and "prod, reversed" in unknown.err


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def test_watch_stops_cleanly_on_sigterm(engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path) -> None:
    log = (tmp_path / "loop.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "caxton", "reconcile", "--watch", "--source", str(desired_repo.root),
         "--engine", engine_proc.url, "--interval", "1s", "--poll-interval", "100ms"],
        stdout=log, stderr=subprocess.STDOUT, env=_environment(), cwd=tmp_path)
    try:
        wait_for(lambda: status(engine_proc).get("state") == "idle", timeout=30.0, what="the loop's first pass")
        assert len(revisions(engine_proc)) == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15.0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert status(engine_proc)["state"] == "stopped"
    assert "reconcile loop stopped" in (tmp_path / "loop.log").read_text()


def test_up_serves_the_repository_and_picks_up_commits(desired_repo: DesiredRepo, tmp_path: Path) -> None:
    port = free_port()
    out = (tmp_path / "up.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "caxton", "up", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--poll-interval", "100ms"],
        stdout=out, stderr=subprocess.STDOUT, env=_environment(), cwd=desired_repo.root)
    url = f"http://127.0.0.1:{port}"

    def version(agent: str) -> str:
        reply = httpx.get(f"{url}/api/v1/agents/{agent}", timeout=2.0)
        return str(reply.json().get("version")) if reply.status_code == 200 else ""

    try:
        wait_for(lambda: version("summarizer") == "0.3.1", timeout=40.0, what="up serving the agents")
        sent = httpx.post(f"{url}/api/v1/agents/scorer/messages", json={"content": "hi"}, timeout=5.0)
        assert sent.status_code == 200 and sent.json()["reply"]["agent"] == "scorer"
        # a canary with no traffic pauses for lack of data, and holds back nothing (issue 11)
        desired_repo.edit("agents/data-processor.md", 'version: "1.0.0"', 'version: "1.1.0"')
        desired_repo.edit("agents/data-processor.md", "interval: 30s", "interval: 1s")
        desired_repo.commit("data-processor canary")
        wait_for(lambda: (httpx.get(f"{url}/api/v1/agents/data-processor", timeout=2.0).json().get("rollout")
                          or {}).get("status") == "paused", timeout=15.0, what="the canary paused")
        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "2.0.0"')
        desired_repo.commit("summarizer 2.0.0")
        wait_for(lambda: version("summarizer") == "2.0.0", timeout=15.0, what="the commit served")
        assert version("data-processor") == "1.0.0", "the paused canary's stable revision still serves"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
    text = (tmp_path / "up.out").read_text()
    assert code == 0, text
    assert f"caxton engine API at {url}/api/v1" in text
    assert "applied " in text and "summarizer created (revision 1)" in text
    assert "summarizer updated (revision 2)" in text
    assert "progressing " in text and "data-processor rollout running (revision 2)" in text
