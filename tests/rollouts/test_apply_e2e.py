"""The README walkthrough, end to end: the example agents, a real engine subprocess, the real CLI.

A canary of the quickstart's ``scorer`` promotes under load (apply exits 0);
a faulty build of it is rolled back automatically (apply exits 3) and
``caxton rollout status`` says which metric failed and by how much.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import wasmtime

from caxton.client import agents as agent_api
from caxton.spec.api import wire
from tests.rollouts.conftest import Load
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo

CANARY = """rollout:
  strategy: canary
  steps: [20, 50, 100]
  interval: 0.5s
  analysis:
    max_error_rate: 0.05
    min_requests: 5
"""


def http_load(engine: EngineProcess) -> Load:
    clients: dict[int, Any] = {}

    def send(conversation: str | None) -> dict[str, Any]:
        import threading

        key = threading.get_ident()
        if key not in clients:
            clients[key] = engine.client()
        result: dict[str, Any] = wire(agent_api.send(clients[key], "scorer", "hello", conversation_id=conversation))
        return result

    return Load(send, threads=2, pause=0.005)


def rebuild(repo: DesiredRepo, wat: str, version: str) -> None:
    """Write wasm/scorer.wasm from ``wat``, pin its sha256 and set ``version`` in agents/scorer.md."""
    module = bytes(wasmtime.wat2wasm(wat))
    (repo.root / "wasm" / "scorer.wasm").write_bytes(module)
    text = (repo.root / "agents" / "scorer.md").read_text()
    lines = [f"sha256: {hashlib.sha256(module).hexdigest()}" if line.startswith("sha256:") else
             f'version: "{version}"' if line.startswith("version:") else line for line in text.splitlines()]
    (repo.root / "agents" / "scorer.md").write_text("\n".join(lines) + "\n")


def test_canary_promotes_then_a_faulty_revision_is_rolled_back(run_cli: Any, engine_proc: EngineProcess,
                                                                tmp_path: Path) -> None:
    repo = DesiredRepo(tmp_path / "repo")
    repo.edit("agents/scorer.md", "security_policy:", CANARY + "security_policy:")
    created = run_cli("apply", str(repo.agents), "--engine", engine_proc.url, "--auto-approve")
    assert created.code == 0, created.err

    wat = (repo.root / "wasm" / "scorer.wat").read_text()
    with http_load(engine_proc) as load:
        time.sleep(0.3)
        repo.edit("agents/scorer.md", 'version: "1.0.0"', 'version: "1.1.0"')
        healthy = run_cli("apply", str(repo.agents), "--engine", engine_proc.url, "--auto-approve")
        assert healthy.code == 0, healthy.out + healthy.err
        for step in ("1/3", "2/3", "3/3"):
            assert f"scorer: step {step} (" in healthy.out and "passed: error_rate 0.0" in healthy.out
        assert "rollout succeeded: every step passed; revision 2 serves 100 %" in healthy.out

        rebuild(repo, wat.replace("(local.set $out (i32.add", "unreachable (local.set $out (i32.add", 1), "1.2.0")
        faulty = run_cli("apply", str(repo.agents), "--engine", engine_proc.url, "--auto-approve")
        time.sleep(0.2)
    assert faulty.code == 3, faulty.out + faulty.err
    assert "rollout rolled back: analysis failed at step 1/3 (20 %): error_rate 1 > 0.05 on revision 3" in faulty.out
    assert "Apply rolled_back" in faulty.out
    assert "a rollout was rolled back" in faulty.err
    _only_revision_3_failed(load)

    status = run_cli("rollout", "status", "scorer", "--engine", engine_proc.url)
    assert status.code == 0, status.err
    assert "scorer: canary rollout" in status.out and "ROLLED BACK" in status.out
    assert "revisions: 2 (stable) -> 3 (1.2.0)" in status.out
    row = next(line for line in status.out.splitlines() if "error_rate" in line and "FAIL" in line)
    assert row.split()[2:5] == ["3", "1", "<="] and "0.05" in row
    with engine_proc.client() as client:
        assert agent_api.get(client, "scorer").revision == 2
        assert agent_api.send(client, "scorer", "hello").revision == 2
    listed = json.loads(run_cli("history", "scorer", "--engine", engine_proc.url, "--output", "json").out)
    assert [(r["revision"], r["outcome"]) for r in listed["revisions"]] == [
        (3, "rolled_back"), (2, "serving"), (1, "superseded")]


def _only_revision_3_failed(load: Load) -> None:
    bad = [r for r in load.failures() if r.revision != 3]
    assert not bad, [r.error for r in bad[:3]]
    assert any(r.revision == 3 for r in load.failures()), "the faulty revision got no traffic"
