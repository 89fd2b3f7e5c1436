"""The metrics contract on a live engine: promtool accepts /metrics, gauges are never stale,
a serving revision's counters exist at 0, a retired revision's series are gone, rollouts show."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from caxton import __version__
from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.client.transport import EngineClient
from caxton.errors import AgentFailure
from tests.rollouts import agents
from tests.rollouts.prometheus_server import ensure_installed
from tests.rollouts.test_durability import write_agent
from tests.support.engine import EngineProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
#: A canary that stays at its first step (50%) for the whole test: its analysis needs far more traffic.
CANARY = {"strategy": "canary", "steps": [50, 100], "interval": "60s",
          "analysis": {"min_requests": 100000, "on_no_data": "pause"}}


def promtool() -> str:
    """promtool ships in the Debian package ``prometheus``, which the Prometheus tests install when absent."""
    found = shutil.which("promtool")
    if found is None:
        ensure_installed()
        found = shutil.which("promtool")
    assert found, "the prometheus package is installed but promtool is not on PATH"
    return found


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def series_of(found: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    want = set(labels.items())
    return [dict(key) for (n, key) in found if n == name and want <= set(key)]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def apply(run_cli: Any, engine: EngineProcess, root: Path, *extra: str) -> None:
    done = run_cli("apply", str(root / "agents"), "--engine", engine.url, "--auto-approve", *extra)
    assert done.code == 0, done.out + done.err


def test_promtool_accepts_a_live_engines_metrics(run_cli: Any, module_engine_proc: EngineProcess,
                                                 tmp_path: Path) -> None:
    write_agent(tmp_path, 1, name="steady")
    write_agent(tmp_path, 1, name="flaky", faulty=True)
    apply(run_cli, module_engine_proc, tmp_path)
    client = module_engine_proc.client()
    for i in range(5):
        agent_api.send(client, "steady", {"n": i})
        try:
            agent_api.send(client, "flaky", {"n": i})
        except AgentFailure:
            pass  # every 5th message of the faulty agent fails
    write_agent(tmp_path, 2, CANARY, name="steady")
    apply(run_cli, module_engine_proc, tmp_path, "--no-wait")
    wait_for(lambda: value(samples(status_api.metrics(client)), "caxton_rollout_step", agent="steady",
                           strategy="canary") is not None, "the canary to be in flight")

    text = status_api.metrics(client)
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = samples(text)
    assert value(found, "caxton_build_info", version=__version__) == 1
    assert value(found, "process_cpu_seconds_total") is not None
    assert series_of(found, "python_info")
    assert value(found, "caxton_state_serial") == status_api.state(client).serial  # computed at scrape: never behind
    assert value(found, "caxton_agents", kind="wasm", state="Running") == 2
    assert value(found, "caxton_agents", kind="wasm", state="Failed") == 0  # present at 0: alerts see 0
    assert value(found, "caxton_agents", kind="config", state="Active") == 0
    assert value(found, "caxton_memory_entities") == 0  # scrape-time, from the engine's memory
    assert (value(found, "caxton_memory_sqlite_size_bytes") or 0) > 0
    assert value(found, "caxton_agent_messages_total", agent="flaky", revision="1") == 5
    assert value(found, "caxton_agent_errors_total", agent="flaky", revision="1", reason="agent_error") == 1
    assert value(found, "caxton_agent_errors_total", agent="steady", revision="1", reason="agent_failure") == 0
    # the canary's candidate serves from the start: its counters exist, at 0
    assert value(found, "caxton_agent_messages_total", agent="steady", revision="2") == 0
    assert value(found, "caxton_agent_errors_total", agent="steady", revision="2", reason="agent_failure") == 0
    assert value(found, "caxton_rollout_phase", agent="steady", strategy="canary", phase="running") == 1
    assert value(found, "caxton_rollout_step", agent="steady", strategy="canary") == 0
    assert value(found, "caxton_rollout_weight_percent", agent="steady", revision="2") == 50
    assert value(found, "caxton_rollout_weight_percent", agent="steady", revision="1") == 50
    assert value(found, "caxton_agent_reloads_total", agent="flaky", outcome="success") == 1
    messages = series_of(found, "caxton_http_requests_total", method="POST", status="200")
    assert {"route": "/api/v1/agents/{name}/messages", "method": "POST", "status": "200"} in messages
    assert not [s for s in series_of(found, "caxton_http_requests_total") if "steady" in s["route"]]


def test_a_retired_revisions_series_disappear(run_cli: Any, module_engine_proc: EngineProcess, tmp_path: Path) -> None:
    client = module_engine_proc.client()
    done = run_cli("rollout", "abort", "steady", "--engine", module_engine_proc.url)
    assert done.code == 0, done.out + done.err

    def candidate_gone() -> bool:
        return not series_of(samples(status_api.metrics(client)), "caxton_agent_messages_total", agent="steady", revision="2")

    wait_for(candidate_gone, "the aborted candidate's series to go")
    found = samples(status_api.metrics(client))
    assert not [k for k in found if dict(k[1]).get("agent") == "steady" and dict(k[1]).get("revision") == "2"]
    assert value(found, "caxton_rollouts_finished_total", agent="steady", status="rolled_back") == 1
    assert value(found, "caxton_rollout_step", agent="steady", strategy="canary") is None  # nothing in flight
    assert value(found, "caxton_agent_messages_total", agent="steady", revision="1") == 5

    write_agent(tmp_path, 3, name="flaky")  # a plain hot swap: revision 1 retires, the new one starts at 0
    apply(run_cli, module_engine_proc, tmp_path)
    found = samples(status_api.metrics(client))
    new = str(agent_api.get(client, "flaky").revision)
    assert new != "1"
    assert not [k for k in found if dict(k[1]).get("agent") == "flaky" and dict(k[1]).get("revision") == "1"]
    assert value(found, "caxton_agent_messages_total", agent="flaky", revision=new) == 0
    assert value(found, "caxton_agent_errors_total", agent="flaky", revision=new, reason="agent_failure") == 0
    assert value(found, "caxton_state_serial") == status_api.state(client).serial


def test_the_state_gauges_follow_removal(module_engine_proc: EngineProcess) -> None:
    client: EngineClient = module_engine_proc.client()
    before = samples(status_api.metrics(client))
    assert series_of(before, "caxton_agent_reloads_total", agent="flaky")
    running = value(before, "caxton_agents", kind="wasm", state="Running")
    assert running == 1  # the last apply's directory held only "flaky": "steady" was removed
    agent_api.remove(client, "flaky")
    found = samples(status_api.metrics(client))
    assert value(found, "caxton_agents", kind="wasm", state="Running") == 0
    assert not series_of(found, "caxton_agent_messages_total", agent="flaky")
    assert not series_of(found, "caxton_agent_reloads_total", agent="flaky")  # per-agent series go with it
    assert value(found, "caxton_state_serial") == status_api.state(client).serial


def test_tool_call_series_pass_promtool_and_go_with_their_agent(module_engine_proc: EngineProcess) -> None:
    client: EngineClient = module_engine_proc.client()
    spec = {"name": "clerk", "version": "1.0.0", "system_prompt": "You are a clerk.", "tools": ["calculator"]}
    agent_api.deploy(client, spec)
    for message in ('/tool calculator {"expression": "6 * 7"}', '/tool calculator {"expression": "1 / 0"}',
                    '/tool shell {"cmd": "ls"}'):
        agent_api.send(client, "clerk", message)
    text = status_api.metrics(client)
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = samples(text)
    assert value(found, "caxton_tool_calls_total", agent="clerk", tool="calculator", outcome="ok") == 1
    assert value(found, "caxton_tool_calls_total", agent="clerk", tool="calculator", outcome="invalid_arguments") == 1
    assert value(found, "caxton_tool_calls_total", agent="clerk", tool="(unlisted)", outcome="not_allowed") == 1
    assert value(found, "caxton_tool_call_duration_seconds_count", agent="clerk", tool="calculator") == 2
    assert value(found, "caxton_tool_call_duration_seconds_bucket", agent="clerk", tool="calculator", le="+Inf") == 2
    assert value(found, "caxton_tool_calls_active") == 0  # present at 0: the stuck alert sees 0
    agent_api.remove(client, "clerk")
    gone = samples(status_api.metrics(client))
    assert not series_of(gone, "caxton_tool_calls_total", agent="clerk")
    assert not series_of(gone, "caxton_tool_call_duration_seconds_count", agent="clerk")
