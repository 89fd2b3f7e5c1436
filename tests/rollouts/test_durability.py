"""kill -9 mid-canary: the rollout resumes at its step (or rolls back with resume: false), and no
conversation changes revision across the crash. A real engine subprocess, the real CLI, load over HTTP."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import yaml

from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.spec.api import wire

from tests.rollouts import agents
from tests.rollouts.conftest import Load
from tests.support.engine import EngineProcess


def write_agent(root: Path, version: int, rollout: dict[str, Any] | None = None, *, name: str = "echo",
                faulty: bool = False) -> Path:
    """agents/NAME.md + agents/NAME.wasm for ``version`` of the test agent."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "agents" / f"{name}.wasm").write_bytes(agents.module(version, faulty=faulty))
    spec = {**agents.spec(name, version, rollout), "module": f"{name}.wasm"}
    (root / "agents" / f"{name}.md").write_text("---\n" + yaml.safe_dump(spec) + "---\n\nThe rollout test agent.\n")
    return root / "agents"


def http_load(engine: EngineProcess, spanning: dict[str, bool] | None = None, *, name: str = "echo") -> Load:
    """Threads 0 and 1 start a new conversation every 10 messages; thread 2 keeps a pool of 30
    conversations that it starts once ``spanning["on"]`` is set and uses until the end."""
    local = threading.local()
    spanning = spanning if spanning is not None else {"on": False}

    def conversation(k: int, n: int) -> str:
        if k == 2 and spanning["on"]:
            return f"span-{n % 30}"
        return f"t{k}-c{n // 10}"

    def send(conversation: str | None) -> dict[str, Any]:
        if getattr(local, "client", None) is None:
            local.client = engine.client(timeout=5.0)
        result: dict[str, Any] = wire(agent_api.send(local.client, name, {"n": 1}, conversation_id=conversation))
        return result

    return Load(send, threads=3, pause=0.003, conversation=conversation)


def rollouts_of(engine: EngineProcess, name: str = "echo") -> list[dict[str, Any]]:
    with engine.client() as client:
        found: list[dict[str, Any]] = client.request("GET", f"/rollouts/{name}")["rollouts"]
        return found


def rollout_of(engine: EngineProcess, name: str = "echo") -> dict[str, Any]:
    return rollouts_of(engine, name)[0]


def persisted(engine: EngineProcess) -> dict[str, Any]:
    """The rollout as the killed engine left it in its database."""
    import json
    import sqlite3

    with sqlite3.connect(engine.data_dir / "engine.db") as conn:
        body = conn.execute("SELECT body FROM rollouts ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    found: dict[str, Any] = json.loads(body)
    return found


def wait_for(engine: EngineProcess, predicate: Any, timeout: float) -> None:
    """Poll the newest rollout until ``predicate`` holds (a detached apply may not have started it yet)."""
    deadline = time.monotonic() + timeout
    while True:
        found = rollouts_of(engine)
        if found and predicate(found[0]):
            return
        assert time.monotonic() < deadline, f"timed out; the rollouts are {found}"
        time.sleep(0.05)


def create(run_cli: Any, engine: EngineProcess, root: Path, name: str = "echo") -> None:
    directory = write_agent(root, 1, name=name)
    assert run_cli("apply", str(directory), "--engine", engine.url, "--auto-approve").code == 0


def start_canary(run_cli: Any, engine: EngineProcess, root: Path, *, resume: bool) -> None:
    directory = root / "agents"
    canary = {"strategy": "canary", "steps": [30, 60, 100], "interval": "1s", "resume": resume,
              "analysis": {"min_requests": 5}}
    write_agent(root, 2, canary)
    detached = run_cli("apply", str(directory), "--engine", engine.url, "--auto-approve", "--detach")
    assert detached.code == 0, detached.err


def test_kill_9_mid_canary_resumes_at_its_step_and_keeps_every_conversation(
    run_cli: Any, engine_proc_no_memory: EngineProcess, tmp_path: Path,
) -> None:
    spanning = {"on": False}
    create(run_cli, engine_proc_no_memory, tmp_path / "repo")
    with http_load(engine_proc_no_memory, spanning) as load:
        time.sleep(0.3)
        start_canary(run_cli, engine_proc_no_memory, tmp_path / "repo", resume=True)
        wait_for(engine_proc_no_memory, lambda r: r["step"] == 1, 15)
        spanning["on"] = True
        time.sleep(0.3)
        killed = time.monotonic()
        engine_proc_no_memory.kill()
        before = persisted(engine_proc_no_memory)
        engine_proc_no_memory.start()
        back = time.monotonic()
        after = rollout_of(engine_proc_no_memory)
        wait_for(engine_proc_no_memory, lambda r: r["status"] != "running", 20)
        time.sleep(0.3)
    final = rollout_of(engine_proc_no_memory)
    assert before["status"] == after["status"] == "running"
    assert after["step"] == before["step"] >= 1 and after["weights"] == before["weights"]
    assert before["weights"] in ({"2": 60, "1": 40}, {"2": 100, "1": 0})
    assert final["status"] == "succeeded", final["reason"]
    switched = load.switched(until=_finished(final, load))
    assert not switched, f"{len(switched)} conversation(s) changed revision: {list(switched.items())[:3]}"
    span = [r for r in load.replies if str(r.conversation).startswith("span-") and r.error is None]
    on_canary = {r.conversation for r in span if r.revision == 2 and r.sent < killed}
    after_restart = {r.conversation for r in span if r.sent > back}
    assert on_canary & after_restart, "no canary conversation spanned the crash"
    assert {r.revision for r in span if r.sent > back and r.conversation in on_canary} <= {2}
    crash = [r for r in load.failures() if not (killed - 0.1 <= r.sent <= back)]
    assert not crash, [r.error for r in crash[:3]]
    assert all("engine_unreachable" in str(r.error) for r in load.failures())
    with engine_proc_no_memory.client() as client:
        events = [e.what for e in status_api.events(client, agent="echo", limit=50).events]
    assert "rollout_resumed" in events and events[-1] in ("rollout_succeeded", "deployed", "apply_finished")


def test_kill_9_mid_canary_with_resume_false_rolls_back_on_restart(
    run_cli: Any, engine_proc_no_memory: EngineProcess, tmp_path: Path,
) -> None:
    create(run_cli, engine_proc_no_memory, tmp_path / "repo")
    with http_load(engine_proc_no_memory):
        start_canary(run_cli, engine_proc_no_memory, tmp_path / "repo", resume=False)
        wait_for(engine_proc_no_memory, lambda r: r["step"] == 1, 15)
        engine_proc_no_memory.kill()
        engine_proc_no_memory.start()
    final = rollout_of(engine_proc_no_memory)
    assert final["status"] == "rolled_back"
    assert "rollout.resume is false" in final["reason"]
    with engine_proc_no_memory.client() as client:
        assert {agent_api.send(client, "echo", "x", conversation_id=f"c{i}").revision for i in range(30)} == {1}
        assert agent_api.get(client, "echo").revision == 1


def _finished(rollout: dict[str, Any], load: Load) -> float:
    """A monotonic time just before the promotion (after it, old conversations move to the new revision)."""
    from datetime import datetime

    ended = datetime.fromisoformat(rollout["finished_at"]).timestamp()
    return time.monotonic() - (time.time() - ended) - 0.05

