"""The apply lease does not outlive its apply (issue 18, item 6): a real engine killed -9 during an
apply's change phase and started again releases the lease of the apply it marks interrupted, and a
lease whose holder process is known dead is free at once, so the next `caxton apply` succeeds at
once instead of waiting out the lease's ttl. A live holder's lease still blocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import wasmtime
import yaml

from tests.cli.conftest import child_env
from tests.rollouts.test_durability import write_agent
from tests.support.engine import EngineProcess

#: ``caxton_init`` busy-waits 60 s: the apply that deploys this agent stays in its change phase.
SLOW_INIT = """
(module
  (import "caxton" "clock_ms" (func $clock (result i64)))
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_init") (local $end i64)
    (local.set $end (i64.add (call $clock) (i64.const 60000)))
    (block $done (loop $again
      (br_if $done (i64.ge_s (call $clock) (local.get $end)))
      (br $again))))
  (func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 0)))
"""


def lock(engine: EngineProcess) -> dict[str, Any]:
    with engine.client() as client:
        found: dict[str, Any] = client.request("GET", "/lock")
        return found


def newest_apply(engine: EngineProcess) -> dict[str, Any] | None:
    with engine.client() as client:
        applies = client.request("GET", "/applies", params={"limit": 1})["applies"]
    return applies[0] if applies else None


def write_slow_agent(root: Path) -> Path:
    agents = root / "agents"
    agents.mkdir(parents=True, exist_ok=True)
    (agents / "slow.wasm").write_bytes(bytes(wasmtime.wat2wasm(SLOW_INIT)))
    spec = {"name": "slow", "version": "1.0.0", "kind": "wasm", "module": "slow.wasm",
            "security_policy": {"allowed_imports": ["caxton.clock_ms"]},
            "resource_limits": {"max_execution_time_ms": 600_000, "fuel": 10**15}}
    (agents / "slow.md").write_text("---\n" + yaml.safe_dump(spec) + "---\n", "utf-8")
    return agents


def test_a_restart_releases_the_lease_of_the_apply_it_marks_interrupted(
    engine_proc_no_memory: EngineProcess, tmp_path: Path, run_cli: Any,
) -> None:
    root = tmp_path / "repo"
    agents = write_slow_agent(root)
    proc = subprocess.Popen([sys.executable, "-m", "caxton", "apply", str(agents), "--auto-approve",
                             "--engine", engine_proc_no_memory.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=child_env())
    try:
        deadline = time.monotonic() + 30
        while not ((newest := newest_apply(engine_proc_no_memory)) and newest["status"] == "running" and lock(engine_proc_no_memory)["held"]):
            assert time.monotonic() < deadline and proc.poll() is None, "the apply never reached its change phase"
            time.sleep(0.05)
        assert f"pid {proc.pid}" in lock(engine_proc_no_memory)["lease"]["holder"]
        proc.send_signal(signal.SIGSTOP)  # the holder stays alive: only the interrupted apply frees its lease
        engine_proc_no_memory.kill()
        engine_proc_no_memory.start()
        after = newest_apply(engine_proc_no_memory)
        assert after is not None and (after["id"], after["status"]) == (newest["id"], "interrupted")
        assert lock(engine_proc_no_memory)["held"] is False

        (agents / "slow.md").unlink()
        (agents / "slow.wasm").unlink()
        write_agent(root, 1)
        result = run_cli("apply", str(agents), "--engine", engine_proc_no_memory.url, "--auto-approve")
        assert result.code == 0, result.err
    finally:
        proc.kill()
        proc.wait(10)


def test_a_lease_whose_holder_process_is_dead_is_free_at_once(
    engine_proc_no_memory: EngineProcess, tmp_path: Path, run_cli: Any,
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    host = socket.gethostname()
    with engine_proc_no_memory.client() as client:
        client.request("POST", "/lock", json={"holder": f"ci@{host} pid {gone.pid}", "reason": "crashed", "ttl": 600})
    assert lock(engine_proc_no_memory)["held"] is False
    agents = write_agent(tmp_path / "repo", 1)
    assert run_cli("apply", str(agents), "--engine", engine_proc_no_memory.url, "--auto-approve").code == 0

    with engine_proc_no_memory.client() as client:  # a live holder (this process) still holds it until its ttl
        client.request("POST", "/lock", json={"holder": f"ci@{host} pid {os.getpid()}", "ttl": 600})
    assert lock(engine_proc_no_memory)["held"] is True
    write_agent(tmp_path / "repo", 2)
    blocked = run_cli("apply", str(agents), "--engine", engine_proc_no_memory.url, "--auto-approve")
    assert blocked.code == 1 and "apply lock is held by" in blocked.err
