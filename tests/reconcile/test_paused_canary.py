"""Issue 11: one paused canary never freezes the loop; a newer commit supersedes it; the status tells the truth.

A real engine subprocess, the quickstart in a GitPython repo, the watch loop in a thread (its interval long,
so every pass here comes from a commit, and a short refresh). A canary of data-processor with no traffic pauses
for lack of data; commits to the two other agents are served meanwhile; a newer commit to data-processor
supersedes its paused rollout. `caxton reconcile status` and `caxton agents list` (the real CLI) show it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.client import reconcile as board
from caxton.reconcile import sources
from caxton.reconcile.loop import Settings
from caxton.reconcile.passes import Options, Target
from tests.reconcile.conftest import revisions, running_loop, wait_for
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo

WATCH = Settings(interval=60.0, backoff_base=0.2, backoff_cap=1.0, jitter=0.0, refresh=0.2,
                 options=Options(apply_timeout=30.0))
DP = "agents/data-processor.md"


def rows(engine: EngineProcess) -> dict[str, dict[str, Any]]:
    """The loop's SYNC/HEALTH rows as the engine's reconcile status holds them."""
    with engine.client() as client:
        status = board.read(client).status or {}
    return {row["id"]: row for view in status.get("engines") or [] for row in view.get("agents") or []}


def cli(engine: EngineProcess, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "caxton", *args, "--engine", engine.url], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def row_of(text: str, name: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.startswith(name + " "))


def answering(engine: EngineProcess, name: str) -> int:
    with engine.client() as client:
        return agent_api.send(client, name, "hello").revision


def rollout_of(engine: EngineProcess, name: str) -> Any:
    with engine.client() as client:
        return next(a for a in status_api.state(client).agents if a.id == name).rollout


def test_a_paused_canary_blocks_nothing_and_a_newer_commit_supersedes_it(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    source = sources.open_source(str(desired_repo.root), branch="main", path=None, data_dir=tmp_path / "c", poll=0.05)
    with running_loop(source, [Target(engine_proc.url)], WATCH) as loop:
        wait_for(lambda: {n: v[2] for n, v in revisions(engine_proc).items()}
                 == {"data-processor": "1.0.0", "scorer": "1.0.0", "summarizer": "0.3.1", "word-count": "1.0.0"},
                 what="the quickstart served")
        wait_for(lambda: loop.status.state == "idle", what="the loop idle")

        # 1. a canary with no traffic: paused for no data (1 s analysis interval instead of 30 s)
        desired_repo.edit(DP, 'version: "1.0.0"', 'version: "1.1.0"')
        desired_repo.edit(DP, "interval: 30s", "interval: 1s")
        desired_repo.commit("data-processor 1.1.0")
        paused = wait_for(lambda: (r := rows(engine_proc).get("data-processor")) and r["health"] == "Paused" and r,
                          what="data-processor reported Paused")
        assert paused == {"id": "data-processor", "name": "data-processor", "sync": "Synced", "health": "Paused",
                          "reason": "rollout to 1.1.0 paused at step 1/3 (no data): "
                                    "`caxton rollout promote data-processor`",
                          "version": "1.0.0", "desired_version": "1.1.0"}
        assert loop.status.state == "waiting"
        text = cli(engine_proc, "reconcile", "status")
        assert "state:               waiting (data-processor paused" in text
        assert row_of(text, "data-processor")[:3] == ["data-processor", "Synced", "Paused"]
        assert "next attempt:        in " in text

        # 2. commits to the two other agents are served while the canary stays paused
        desired_repo.edit("agents/summarizer.toml", 'version = "0.3.1"', 'version = "0.3.2"')
        desired_repo.commit("summarizer 0.3.2")
        desired_repo.edit("agents/scorer.md", 'version: "1.0.0"', 'version: "1.0.1"')
        desired_repo.commit("scorer 1.0.1")
        wait_for(lambda: revisions(engine_proc)["summarizer"][1:] == (2, "0.3.2")
                 and revisions(engine_proc)["scorer"][1:] == (2, "1.0.1"), timeout=20.0, what="both commits served")
        assert answering(engine_proc, "summarizer") == 2 and answering(engine_proc, "scorer") == 2
        assert rollout_of(engine_proc, "data-processor").status == "paused"
        assert revisions(engine_proc)["data-processor"][2] == "1.0.0", "the stable revision serves meanwhile"
        wait_for(lambda: {k: (r["sync"], r["health"]) for k, r in rows(engine_proc).items()} == {
            "data-processor": ("Synced", "Paused"), "scorer": ("Synced", "Healthy"),
            "summarizer": ("Synced", "Healthy"), "word-count": ("Synced", "Healthy")}, what="the rows after both commits")
        listed = {a["name"]: a for a in json.loads(cli(engine_proc, "agents", "list", "--output", "json"))}
        assert (listed["data-processor"]["sync"], listed["data-processor"]["health"]) == ("Synced", "Paused")
        assert (listed["summarizer"]["sync"], listed["summarizer"]["health"]) == ("Synced", "Healthy")

        # 3. a newer commit to the paused agent supersedes its rollout (the new one analyses every 60 s)
        desired_repo.edit(DP, 'version: "1.1.0"', 'version: "1.2.0"')
        desired_repo.edit(DP, "interval: 1s", "interval: 60s")
        desired_repo.commit("data-processor 1.2.0")
        progressing = wait_for(lambda: (r := rows(engine_proc).get("data-processor")) and r["desired_version"] == "1.2.0"
                               and r["health"] == "Progressing" and r, what="the superseding rollout reported")
        assert progressing["sync"] == "Synced"
        assert progressing["reason"] == "rollout to 1.2.0 at step 1/3"
        assert rollout_of(engine_proc, "data-processor").candidate_version == "1.2.0"
        assert answering(engine_proc, "summarizer") == 2, "the other agents are untouched"
        text = cli(engine_proc, "reconcile", "status")
        assert row_of(text, "data-processor")[:5] == ["data-processor", "Synced", "Progressing", "1.0.0", "1.2.0"]
        assert "rollout to 1.2.0 at step 1/3" in text
        line = " ".join(row_of(cli(engine_proc, "agents", "list"), "data-processor"))
        assert "Synced Progressing rollout to 1.2.0 at step 1/3" in line


def test_a_rolled_back_version_is_held_not_retried_until_the_agent_changes(
    engine_proc: EngineProcess, desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    source = sources.open_source(str(desired_repo.root), branch="main", path=None, data_dir=tmp_path / "c", poll=0.05)
    with running_loop(source, [Target(engine_proc.url)], WATCH) as loop:
        wait_for(lambda: len(revisions(engine_proc)) == 4 and loop.status.state == "idle", what="the quickstart served")
        desired_repo.edit(DP, 'version: "1.0.0"', 'version: "1.1.0"')
        desired_repo.edit(DP, "interval: 30s", "interval: 1s\n  analysis:\n    on_no_data: fail")
        desired_repo.commit("data-processor 1.1.0, rolled back when no data comes")
        degraded = wait_for(lambda: (r := rows(engine_proc).get("data-processor")) and r["health"] == "Degraded" and r,
                            what="the rollback reported")
        assert degraded["sync"] == "OutOfSync"
        assert degraded["reason"].startswith("rollout to 1.1.0 rolled back (") and "1.0.0 serves" in degraded["reason"]
        with engine_proc.client() as client:
            before = len(client.request("GET", "/rollouts/data-processor", params={"limit": 50})["rollouts"])
        for _ in range(3):  # passes on demand (the webhook's): each one holds the rolled-back version
            runs = loop.status.runs.copy()
            loop.poke("trigger")
            wait_for(lambda: sum(loop.status.runs.values()) > sum(runs.values()), what="one more pass")
            assert loop.status.last_outcome == "degraded", loop.status.last_message
        with engine_proc.client() as client:
            after = len(client.request("GET", "/rollouts/data-processor", params={"limit": 50})["rollouts"])
        assert after == before, "the rolled-back version was submitted again"
        assert loop.status.state == "idle"

        desired_repo.edit(DP, "on_no_data: fail", "on_no_data: pass")
        desired_repo.edit(DP, 'version: "1.1.0"', 'version: "1.1.1"')
        desired_repo.commit("data-processor 1.1.1")
        wait_for(lambda: revisions(engine_proc)["data-processor"][2] == "1.1.1", timeout=30.0, what="the fix rolled out")
        wait_for(lambda: (rows(engine_proc)["data-processor"]["sync"], rows(engine_proc)["data-processor"]["health"])
                 == ("Synced", "Healthy"), what="synced and healthy again")
