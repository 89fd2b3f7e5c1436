"""kill -9 of the rollout leader mid-canary with real engine processes on one PostgreSQL database: the survivor
takes the leadership over, resumes the canary at its stored step and finishes it exactly once; the survivor
never stops answering. The canary is started through a follower (its apply runs there, the leader drives it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.rollouts.test_durability import http_load, rollout_of, write_agent
from tests.support.engine import EngineProcess
from tests.support.poll import wait_for

TERMINAL = ("rollout_succeeded", "rollout_rolled_back", "rollout_cancelled", "rollout_superseded", "rollout_failed")


def replica(tmp_path: Path, name: str, url: str) -> EngineProcess:
    root = tmp_path / name
    root.mkdir()
    config = root / "caxton.yaml"
    config.write_text(f"memory:\n  enabled: false\nstore:\n  url: {url}\n")
    return EngineProcess(root / "data", config=config).start()


def leads(engine: EngineProcess) -> bool:
    with engine.client() as client:
        detailed: dict[str, Any] = client.request("GET", "/health/detailed")
    return bool(detailed["replica"]["leader"])


def events(engine: EngineProcess) -> list[dict[str, Any]]:
    with engine.client() as client:
        found: list[dict[str, Any]] = client.request("GET", "/events", params={"agent": "echo", "limit": 200})["events"]
    return found


def test_kill_9_of_the_leader_mid_canary_the_survivor_finishes_it_once(
        run_cli: Any, tmp_path: Path, pg_url: str) -> None:
    first = replica(tmp_path, "a", pg_url)
    second = replica(tmp_path, "b", pg_url)
    try:
        assert leads(first) and not leads(second)
        repo = tmp_path / "repo"
        assert run_cli("apply", str(write_agent(repo, 1)), "--engine", second.url, "--auto-approve").code == 0
        canary = {"strategy": "canary", "steps": [30, 60, 100], "interval": "1s", "analysis": {"min_requests": 5}}
        with http_load(first) as doomed, http_load(second) as load:
            write_agent(repo, 2, canary)
            detached = run_cli("apply", str(repo / "agents"), "--engine", second.url, "--auto-approve", "--detach")
            assert detached.code == 0, detached.err
            wait_for(lambda: rollout_of(second)["step"] >= 1, 20, "the canary at its second step")
            before = rollout_of(second)
            assert before["status"] == "running"
            first.kill()
            killed = time.monotonic()
            wait_for(lambda: leads(second), 20, "the survivor leads")
            took_over = time.monotonic() - killed
            wait_for(lambda: rollout_of(second)["status"] != "running", 30, "the rollout ended on the survivor")
            doomed.stop()
        final = rollout_of(second)
        assert final["id"] == before["id"] and final["status"] == "succeeded", final["reason"]
        def whats() -> list[str]:
            return [e["what"] for e in events(second) if (e.get("data") or {}).get("rollout") == before["id"]]

        wait_for(lambda: any(what in TERMINAL for what in whats()), 20, "the rollout's terminal event")
        assert "rollout_resumed" in whats(), whats()
        assert sum(whats().count(what) for what in TERMINAL) == 1, whats()
        load.assert_only_failures_of(None)  # the survivor answered every message, before, during and after
        assert took_over < 20
        with second.client() as client:
            applied = client.request("GET", "/applies")["applies"][0]
        wait_for(lambda: second.client().request("GET", f"/applies/{applied['id']}")["status"] == "succeeded", 20,
                 "the apply (run by the survivor) reports the rollout's success")
    finally:
        for engine in (first, second):
            if engine.running:
                engine.terminate()
