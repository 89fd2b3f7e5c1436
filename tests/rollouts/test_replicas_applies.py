"""kill -9 of the replica running an apply, with real engine processes on one PostgreSQL database (issue 14, "the
apply lease is not wedged"): the survivor ends the apply as interrupted (naming the dead engine and what landed),
frees the apply lock its still-living client holds, `caxton applies follow` through the survivor ends with that
error (exit 1), and the next `caxton apply` through the survivor converges."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cli.conftest import child_env
from tests.rollouts.test_durability import write_agent
from tests.rollouts.test_lease_recovery import lock, newest_apply, write_slow_agent
from tests.rollouts.test_replicas_failover import replica
from tests.support.poll import wait_for


def results(apply: dict[str, Any] | None) -> dict[str, str]:
    return {r["id"]: r["status"] for r in (apply or {}).get("results", [])}


def test_kill_9_of_the_replica_running_an_apply_the_survivor_ends_it_frees_the_lock_and_the_next_apply_converges(
        run_cli: Any, tmp_path: Path, pg_url: str) -> None:
    runner, survivor = replica(tmp_path, "runner", pg_url), replica(tmp_path, "survivor", pg_url)
    client: subprocess.Popen[bytes] | None = None
    try:
        repo = tmp_path / "repo"
        agents = write_agent(repo, 1)
        assert run_cli("apply", str(agents), "--engine", runner.url, "--auto-approve").code == 0
        write_agent(repo, 1, name="fresh")  # lands first (a create) ...
        write_slow_agent(repo)  # ... then this one's module initialises for 60 s: the apply is cut there
        write_agent(repo, 2, {"strategy": "canary", "steps": [50, 100], "interval": "1h"})  # never started
        client = subprocess.Popen([sys.executable, "-m", "caxton", "apply", str(agents), "--auto-approve",
                                   "--engine", runner.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=child_env())
        wait_for(lambda: results(newest_apply(survivor)) == {"fresh": "done", "slow": "running", "echo": "pending"}
                 and lock(survivor)["held"], 60, "the apply making slow, as the survivor reads it")
        applying = newest_apply(survivor)
        assert applying is not None and applying["engine"].split(":")[1] == str(runner.proc.pid)  # type: ignore[union-attr]
        pid = runner.proc.pid  # type: ignore[union-attr]
        client.send_signal(signal.SIGSTOP)  # its client lives on, holding the lock: only the survivor frees it
        runner.kill()

        followed = run_cli("applies", "follow", applying["id"], "--engine", survivor.url, "--timeout", "120")
        assert followed.code == 1, followed.err
        error = followed.err
        assert f"apply {applying['id']} interrupted: the engine running it (caxton " in error
        assert f"pid {pid}) died: its process no longer exists (last heartbeat " in error
        assert "landed: fresh; cut while being made (each landed whole or not at all): slow; not made: echo" in error
        assert "`caxton apply`" in error
        assert lock(survivor)["held"] is False
        ended = newest_apply(survivor)
        assert ended is not None and ended["status"] == "interrupted" and results(ended) == {
            "fresh": "done", "slow": "interrupted", "echo": "interrupted"}

        (agents / "slow.md").unlink()
        (agents / "slow.wasm").unlink()
        write_agent(repo, 2)
        converged = run_cli("apply", str(agents), "--engine", survivor.url, "--auto-approve")
        assert converged.code == 0, converged.err
        same = run_cli("plan", str(agents), "--engine", survivor.url)
        assert same.code == 0 and "No changes. The engine matches the desired state." in same.out, same.out
    finally:
        if client is not None:
            client.kill()
            client.wait(10)
        for engine in (runner, survivor):
            if engine.running:
                engine.terminate()
