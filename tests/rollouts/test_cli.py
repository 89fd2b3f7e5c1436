"""``caxton rollout status|promote|abort`` against a real engine subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from caxton.client import agents as agent_api
from tests.rollouts.test_durability import create, http_load, rollout_of, wait_for, write_agent
from tests.support.engine import EngineProcess

LONG = {"strategy": "canary", "steps": [50, 100], "interval": "60s", "analysis": {"min_requests": 1}}


def detach(run_cli: Any, engine: EngineProcess, root: Path, version: int) -> None:
    write_agent(root, version, LONG)
    done = run_cli("apply", str(root / "agents"), "--engine", engine.url, "--auto-approve", "--detach")
    assert done.code == 0, done.err
    wait_for(engine, lambda r: r["candidate_revision"] == version and r["status"] == "running", 10)


def test_abort_then_promote_from_the_cli(run_cli: Any, engine_proc_no_memory: EngineProcess, tmp_path: Path) -> None:
    create(run_cli, engine_proc_no_memory, tmp_path / "repo")
    with http_load(engine_proc_no_memory) as load:
        detach(run_cli, engine_proc_no_memory, tmp_path / "repo", 2)
        live = run_cli("rollout", "status", "echo", "--engine", engine_proc_no_memory.url)
        assert "echo: canary rollout" in live.out and "RUNNING at step 1/2 (50 %)" in live.out
        assert "live:      candidate " in live.out

        aborted = run_cli("rollout", "abort", "echo", "--engine", engine_proc_no_memory.url)
        assert aborted.code == 0, aborted.err
        assert "rolled back: aborted by " in aborted.out
        watched = run_cli("rollout", "status", "echo", "--watch", "--engine", engine_proc_no_memory.url)
        assert watched.code == 3 and "ROLLED BACK" in watched.out

        detach(run_cli, engine_proc_no_memory, tmp_path / "repo", 3)
        promoted = run_cli("rollout", "promote", "echo", "--engine", engine_proc_no_memory.url, "-o", "json")
        assert promoted.code == 0, promoted.err
        assert json.loads(promoted.out)["status"] == "succeeded"
    assert rollout_of(engine_proc_no_memory)["status"] == "succeeded"
    with engine_proc_no_memory.client() as client:
        assert agent_api.get(client, "echo").revision == 3
    load.assert_only_failures_of(None)

    nothing = run_cli("rollout", "abort", "echo", "--engine", engine_proc_no_memory.url)
    assert nothing.code == 1 and "agent 'echo' has no rollout in progress" in nothing.err
    every = run_cli("rollout", "status", "--engine", engine_proc_no_memory.url, "-o", "json")
    assert [r["status"] for r in json.loads(every.out)["rollouts"]] == ["succeeded", "rolled_back"]
