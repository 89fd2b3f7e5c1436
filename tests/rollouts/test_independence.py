"""Per-agent independence (issue 11): a paused canary of one agent blocks nothing else, a newer version
supersedes it (the Argo Rollouts rule), staleness is per agent, and `caxton apply` in CI says what it
waits for. A real engine subprocess and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from caxton.client import status as status_api
from tests.rollouts.test_durability import rollouts_of, write_agent
from tests.support.engine import EngineProcess
from tests.support.signals import deliverable_sigint, interrupt

#: Pauses at its first check (1 s) for lack of traffic: nothing sends it any message.
CANARY = {"strategy": "canary", "steps": [50, 100], "interval": "1s", "analysis": {"min_requests": 5}}
REPO = Path(__file__).resolve().parents[2]


def apply(run_cli: Any, engine: EngineProcess, target: Path, *args: str) -> Any:
    return run_cli("apply", str(target), "--engine", engine.url, "--auto-approve", *args)


def serving(engine: EngineProcess) -> dict[str, int]:
    with engine.client() as client:
        return {a.id: a.revision for a in status_api.state(client).agents}


def wait_paused(engine: EngineProcess, name: str, candidate: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        found = rollouts_of(engine, name)
        if found and found[0]["candidate_revision"] == candidate and found[0]["status"] == "paused":
            return found[0]
        assert time.monotonic() < deadline, f"no paused rollout of {name}: {found}"
        time.sleep(0.05)


def apply_record(engine: EngineProcess, apply_id: str) -> dict[str, Any]:
    with engine.client() as client:
        found: dict[str, Any] = client.request("GET", f"/applies/{apply_id}")
        return found


def test_a_paused_canary_blocks_nothing_and_a_newer_version_supersedes_it(
    run_cli: Any, engine_proc_no_memory: EngineProcess, tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    for name in ("a", "b", "c"):
        write_agent(root, 1, name=name)
    assert apply(run_cli, engine_proc_no_memory, root / "agents").code == 0

    # a canary of `a` that pauses for lack of traffic; --no-wait returns once it started
    write_agent(root, 2, CANARY, name="a")
    started = apply(run_cli, engine_proc_no_memory, root / "agents", "--no-wait")
    assert started.code == 0, started.err
    assert "accepted" in started.out and "caxton applies follow" in started.out
    first = wait_paused(engine_proc_no_memory, "a", 2)
    with engine_proc_no_memory.client() as client:
        assert client.request("GET", "/lock")["held"] is False  # released once accepted

    # b and c change while a stays paused: applied and served at once
    write_agent(root, 2, name="b")
    write_agent(root, 2, name="c")
    others = apply(run_cli, engine_proc_no_memory, root / "agents")
    assert others.code == 0, others.err
    assert serving(engine_proc_no_memory) == {"a": 1, "b": 2, "c": 2}
    assert rollouts_of(engine_proc_no_memory, "a")[0]["status"] == "paused"

    # the candidate desired again: never resubmitted
    same = run_cli("plan", str(root / "agents"), "--engine", engine_proc_no_memory.url, "--detailed-exitcode")
    assert same.code == 0, same.out
    assert "= a: rollout to 1.0.2 paused at step 1/2 (no data)" in same.out
    assert "No changes. The engine is rolling out the desired state (1 rollout(s) in flight)." in same.out

    # a newer version supersedes the paused rollout: back to stable, a new rollout from stable
    write_agent(root, 3, CANARY, name="a")
    shown = run_cli("plan", str(root / "agents"), "--engine", engine_proc_no_memory.url)
    assert ("# a will be updated (canary): rollout to 1.0.2 paused at step 1/2 (no data) -> superseded by 1.0.3"
            in shown.out)
    newer = apply(run_cli, engine_proc_no_memory, root / "agents", "--no-wait", "--output", "json")
    assert newer.code == 0, newer.err
    newer_id = json.loads(newer.out.splitlines()[-1])["apply_id"]
    old, new = rollouts_of(engine_proc_no_memory, "a")[1], rollouts_of(engine_proc_no_memory, "a")[0]
    assert old["id"] == first["id"] and old["status"] == "superseded"
    assert old["reason"] == f"superseded by 1.0.3 (apply {newer_id})"
    assert (new["stable_revision"], new["candidate_revision"], new["status"]) == (1, 3, "running")
    record = apply_record(engine_proc_no_memory, first["apply_id"])
    assert record["status"] == "superseded"
    assert [(r["id"], r["status"]) for r in record["results"]] == [("a", "superseded")]

    # the stable version desired again: the rollout is simply aborted
    wait_paused(engine_proc_no_memory, "a", 3)
    write_agent(root, 1, name="a")
    back = run_cli("plan", str(root / "agents"), "--engine", engine_proc_no_memory.url)
    assert ("# a will be updated (abort): rollout to 1.0.3 paused at step 1/2 (no data) -> aborted: 1.0.1 is desired"
            in back.out)
    aborted = apply(run_cli, engine_proc_no_memory, root / "agents")
    assert aborted.code == 0, aborted.err
    assert rollouts_of(engine_proc_no_memory, "a")[0]["status"] == "superseded"
    assert rollouts_of(engine_proc_no_memory, "a")[0]["reason"].startswith("aborted: 1.0.1 is desired (apply ")
    assert serving(engine_proc_no_memory) == {"a": 1, "b": 2, "c": 2}
    synced = run_cli("plan", str(root / "agents"), "--engine", engine_proc_no_memory.url)
    assert "No changes. The engine matches the desired state." in synced.out


def test_staleness_is_per_agent(run_cli: Any, engine_proc_no_memory: EngineProcess, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for name in ("a", "b"):
        write_agent(root, 1, name=name)
    assert apply(run_cli, engine_proc_no_memory, root / "agents").code == 0
    plans = {}
    for name in ("a", "b"):  # a plan that changes only `name` (a directory holding just it, --no-prune)
        alone = tmp_path / f"only-{name}"
        write_agent(alone, 2, name=name)
        plans[name] = tmp_path / f"plan-{name}.json"
        made = run_cli("plan", str(alone / "agents"), "--engine", engine_proc_no_memory.url, "--no-prune", "--out", str(plans[name]))
        assert made.code == 0, made.err
    write_agent(root, 3, name="a")
    assert apply(run_cli, engine_proc_no_memory, root / "agents").code == 0  # a changed on the engine

    fresh = run_cli("apply", str(plans["b"]), "--engine", engine_proc_no_memory.url)
    assert fresh.code == 0, fresh.err
    stale = run_cli("apply", str(plans["a"]), "--engine", engine_proc_no_memory.url)
    assert stale.code == 1
    assert "plan is stale: agent(s) a changed on the engine since it was made; run plan again" in stale.err
    assert serving(engine_proc_no_memory) == {"a": 2, "b": 2}


def test_apply_says_what_it_waits_for_and_times_out_with_exit_4(
    run_cli: Any, engine_proc_no_memory: EngineProcess, tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    write_agent(root, 1)
    assert apply(run_cli, engine_proc_no_memory, root / "agents").code == 0
    write_agent(root, 2, CANARY)
    waited = apply(run_cli, engine_proc_no_memory, root / "agents", "--timeout", "3")
    assert waited.code == 4, waited.err
    promote = f"caxton rollout promote echo --engine {engine_proc_no_memory.url}"
    abort = f"caxton rollout abort echo --engine {engine_proc_no_memory.url}"
    assert "echo: paused: inconclusive: error_rate: 0 request(s), 5 needed" in waited.out
    assert "waiting for echo: its rollout is paused; it goes on by itself when enough traffic arrives" in waited.err
    assert f"`{promote}`" in waited.err and f"`{abort}`" in waited.err
    assert "echo: rollout paused: inconclusive: " in waited.err
    assert f"  promote it: {promote}\n  abort it:   {abort}\n" in waited.err
    assert "is still progressing on the engine after 3s; waiting for echo" in waited.err
    assert "caxton applies follow " in waited.err

    listed = run_cli("applies", "list", "--engine", engine_proc_no_memory.url, "--output", "json")
    newest = json.loads(listed.out)["applies"][0]
    assert newest["status"] == "progressing" and newest["results"][0]["status"] == "paused"
    text = run_cli("applies", "list", "--engine", engine_proc_no_memory.url)
    assert text.out.splitlines()[1].startswith(f"{newest['id']}  progressing  ")
    assert "1 paused" in text.out.splitlines()[1] and "1 done" in text.out.splitlines()[2]
    shown = run_cli("applies", "show", newest["id"], "--engine", engine_proc_no_memory.url)
    assert shown.out.startswith(f"apply {newest['id']} progressing")
    assert "  echo: update (canary) paused: inconclusive: error_rate: 0 request(s), 5 needed" in shown.out
    assert "(apply): every change accepted; 1 rollout(s) in progress" in shown.out
    as_json = run_cli("applies", "show", newest["id"], "--engine", engine_proc_no_memory.url, "-o", "json")
    assert json.loads(as_json.out)["id"] == newest["id"]

    assert run_cli("rollout", "promote", "echo", "--engine", engine_proc_no_memory.url).code == 0
    followed = run_cli("applies", "follow", newest["id"], "--engine", engine_proc_no_memory.url)
    assert followed.code == 0, followed.err
    assert "Apply succeeded: 1 update." in followed.out
    missing = run_cli("applies", "show", "nope", "--engine", engine_proc_no_memory.url)
    assert missing.code == 1 and "no apply 'nope'" in missing.err


def test_ctrl_c_while_following_names_the_apply(engine_proc_no_memory: EngineProcess, tmp_path: Path,
                                                run_cli: Any) -> None:
    root = tmp_path / "repo"
    write_agent(root, 1)
    assert apply(run_cli, engine_proc_no_memory, root / "agents").code == 0
    write_agent(root, 2, CANARY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    deliverable_sigint()
    proc = subprocess.Popen([sys.executable, "-m", "caxton", "apply", str(root / "agents"), "--auto-approve",
                             "--engine", engine_proc_no_memory.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("waiting for echo" in line for line in err):  # following the paused rollout
            assert time.monotonic() < deadline and proc.poll() is None, err
            time.sleep(0.05)
        assert interrupt(proc, 20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    apply_id = rollouts_of(engine_proc_no_memory)[0]["apply_id"]
    assert err[-1] == (f"interrupted: apply {apply_id} goes on on the engine; "
                       f"follow it with `caxton applies follow {apply_id}`\n")
    assert apply_record(engine_proc_no_memory, apply_id)["status"] == "progressing"  # the engine carries on
    with engine_proc_no_memory.client() as client:
        assert client.request("GET", "/lock")["held"] is False

    engine_proc_no_memory.kill()  # kill -9 while the apply follows its rollout: the rollout resumes, the apply is interrupted
    engine_proc_no_memory.start()
    assert apply_record(engine_proc_no_memory, apply_id)["status"] == "interrupted"
    assert rollouts_of(engine_proc_no_memory)[0]["status"] in ("running", "paused")
