"""The watch loop against a real engine subprocess: commits served, invalid held, drift healed, outages survived."""

from __future__ import annotations

from pathlib import Path

import git

from caxton.client import agents as agent_api
from caxton.client import lock
from caxton.client import reconcile as board
from caxton.client import status as status_api
from caxton.reconcile import sources
from caxton.reconcile.loop import Loop, Settings
from caxton.reconcile.passes import Options, Target
from tests.reconcile.conftest import FAST, revisions, running_loop, wait_for
from tests.support.clock import ManualClock
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo

BROKEN = 'name = "summarizer"\nversion = "not-semver"\nsystem_prompt = "x"\n'


def status(engine: EngineProcess) -> dict:  # type: ignore[type-arg]
    with engine.client() as client:
        return board.read(client).status or {}


def git_source(repo: DesiredRepo, tmp_path: Path) -> sources.Source:
    return sources.open_source(str(repo.root), branch="main", path=None, data_dir=tmp_path / "clones", poll=0.05)


def test_commits_are_served_invalid_ones_held_and_fixes_applied(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    with running_loop(git_source(desired_repo, tmp_path), [Target(engine_proc.url)]):
        wait_for(lambda: len(revisions(engine_proc)) == 4, what="the initial commit applied")
        first = desired_repo.repo.head.commit.hexsha
        wait_for(lambda: status(engine_proc).get("last_applied_commit") == first, what="status of the first commit")

        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.4.0"')
        assert revisions(engine_proc)["summarizer"][2] == "0.3.1", "uncommitted edits are never applied"
        desired_repo.commit("summarizer 0.4.0")
        wait_for(lambda: revisions(engine_proc)["summarizer"] == ("Active", 2, "0.4.0"), what="the commit served")
        with engine_proc.client() as client:
            assert agent_api.send(client, "summarizer", "hello").revision == 2

        desired_repo.write("agents/summarizer.toml", BROKEN)
        broken = desired_repo.commit("break summarizer")
        shown = wait_for(lambda: (s := status(engine_proc)).get("last_outcome") == "invalid"
                         and s.get("last_seen_commit") == broken and s, what="the invalid commit reported")
        assert isinstance(shown, dict)
        assert shown["state"] == "error" and shown["held"] is True, "held until a new revision"
        assert any(d["file"] == "agents/summarizer.toml" and d["severity"] == "error" for d in shown["diagnostics"])
        assert shown["last_applied_commit"] != broken
        assert revisions(engine_proc)["summarizer"] == ("Active", 2, "0.4.0"), "the engine is left untouched"

        desired_repo.edit("agents/summarizer.toml", 'version = "not-semver"', 'version = "0.5.0"')
        fixed = desired_repo.commit("fix summarizer")
        wait_for(lambda: revisions(engine_proc)["summarizer"][2] == "0.5.0", what="the fix applied")
        wait_for(lambda: status(engine_proc).get("last_applied_commit") == fixed, what="status of the fix")
        assert status(engine_proc)["diagnostics"] == []
    with engine_proc.client() as client:
        text = status_api.metrics(client)
    assert 'caxton_reconcile_runs_total{outcome="applied"}' in text
    assert 'caxton_reconcile_runs_total{outcome="invalid"}' in text
    assert "caxton_reconcile_last_success_timestamp_seconds" in text
    assert status(engine_proc)["state"] == "stopped"


def test_a_suspended_agent_is_healed_within_one_interval(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    clock = ManualClock()  # simulated time: the production interval, without waiting for it
    every_30s = Settings(interval=30.0, jitter=0.1, options=Options(apply_timeout=30.0))
    with running_loop(git_source(desired_repo, tmp_path), [Target(engine_proc.url)], every_30s, clock=clock) as loop:
        wait_for(lambda: len(revisions(engine_proc)) == 4 and loop.status.state == "idle",
                 what="the initial commit applied")
        clock.settle()
        with engine_proc.client() as client:
            agent_api.suspend(client, "summarizer")
        began = clock.monotonic()
        while revisions(engine_proc)["summarizer"][0] != "Active":
            assert clock.monotonic() - began < 33.0, "not healed within the interval (30 s +- 10 %)"
            clock.advance(1.0)
            clock.settle()
        assert clock.monotonic() - began >= 27.0, "healed before the interval: by something else than the timer"


def test_an_engine_outage_is_reported_backed_off_and_converged(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    source = git_source(desired_repo, tmp_path)
    with running_loop(source, [Target(engine_proc.url)]) as loop:
        wait_for(lambda: loop.status.state == "idle", what="the initial commit applied")
        engine_proc.kill()
        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.6.0"')
        wanted = desired_repo.commit("summarizer 0.6.0 while the engine is down")
        wait_for(lambda: loop.status.last_outcome == "unreachable" and loop.status.retries >= 2,
                 what="retries while the engine is down")
        assert loop.status.state == "error" and loop.status.held is False, "retried with backoff"
        assert loop.status.last_seen_commit == wanted
        assert "cannot reach the engine" in (loop.status.last_error or "")
        engine_proc.start()
        wait_for(lambda: revisions(engine_proc)["summarizer"][2] == "0.6.0", what="converged after the restart")
        wait_for(lambda: status(engine_proc).get("last_applied_commit") == wanted, what="status re-reported")


def test_a_new_commit_supersedes_a_failing_one_at_once(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    slow = Settings(interval=30.0, backoff_base=30.0, backoff_cap=30.0, options=Options(apply_timeout=30.0))
    with running_loop(git_source(desired_repo, tmp_path), [Target(engine_proc.url)], slow) as loop:
        wait_for(lambda: len(revisions(engine_proc)) == 4, what="the initial commit applied")
        with engine_proc.client() as client:  # someone else holds the apply lock: the pass fails, retry in ~30 s
            wait_for(lambda: not client.request("GET", "/lock")["held"], what="the loop's own apply released the lock")
            client.request("POST", "/lock", json={"holder": "a test", "reason": "block", "ttl": 60})
        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.7.0"')
        desired_repo.commit("blocked by the lock")
        wait_for(lambda: loop.status.last_outcome == "failed", what="the blocked pass")
        assert "lock" in (loop.status.last_error or "")
        with engine_proc.client() as client:
            client.request("DELETE", "/lock", params={"force": "true"})
        desired_repo.edit("agents/summarizer.toml", 'version = "0.7.0"', 'version = "0.8.0"')
        desired_repo.commit("supersedes")
        wait_for(lambda: revisions(engine_proc)["summarizer"][2] == "0.8.0", timeout=10.0,
                 what="the newer commit applied long before the 30 s retry")


def test_the_webhook_makes_a_remote_source_fetch_now(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    bare = tmp_path / "remote.git"
    git.Repo.clone_from(str(desired_repo.root), bare, bare=True)
    source = sources.open_source(f"file://{bare}", branch="main", path=None, data_dir=tmp_path / "clones")
    slow = Settings(interval=60.0, options=Options(apply_timeout=30.0))
    with running_loop(source, [Target(engine_proc.url)], slow):
        wait_for(lambda: len(revisions(engine_proc)) == 4, what="the initial commit applied")
        wait_for(lambda: status(engine_proc).get("state") == "idle", what="the loop idle")
        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.9.0"')
        desired_repo.commit("pushed")
        desired_repo.repo.git.push(str(bare), "main")
        with engine_proc.client() as client:
            assert board.trigger(client, "push to main").loop_reported is True
        wait_for(lambda: revisions(engine_proc)["summarizer"][2] == "0.9.0", timeout=10.0,
                 what="the pushed commit applied long before the 60 s interval")


def test_a_lease_this_process_left_behind_is_freed(engine_proc: EngineProcess, desired_repo: DesiredRepo,
                                                  tmp_path: Path) -> None:
    """An apply cut short by an engine crash leaves our lease: the next pass frees it instead of waiting."""
    with engine_proc.client() as client:
        lock.acquire(client, reason="an apply the engine crashed in", ttl=300)
    loop = Loop(git_source(desired_repo, tmp_path), [Target(engine_proc.url)], FAST)
    try:
        assert loop.once().outcome == "applied"
    finally:
        loop.close()
    with engine_proc.client() as client:
        client.request("POST", "/lock", json={"holder": "someone else", "reason": "theirs", "ttl": 300})
    desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.3.2"')
    desired_repo.commit("blocked by someone else's lease")
    loop = Loop(git_source(desired_repo, tmp_path), [Target(engine_proc.url)], FAST)
    try:
        blocked = loop.once()
    finally:
        loop.close()
    assert blocked.outcome == "failed" and "someone else" in blocked.message
