"""The Grafana dashboard (deploy/grafana/caxton.json) shows data: every panel's query, run by a real
Prometheus that scrapes a real engine under load and evaluates the shipped recording and alert rules.

The load: messages to a healthy WASM agent, to one that fails every 5th message and to a config
agent that calls a tool; memory entities and searches; a canary that succeeds and one left paused; a module refused
for an import its policy does not allow; scheduled backups and an admin one.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from caxton.client import agents as agent_api
from caxton.client import memory
from caxton.errors import CaxtonError
from tests.support.paths import REPO_ROOT
from tests.rollouts import agents
from tests.rollouts.prometheus_server import running_prometheus
from tests.rollouts.test_durability import write_agent
from tests.support.engine import EngineProcess, running_engine

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "caxton.json"
RULE_FILES = [REPO_ROOT / "deploy" / "prometheus" / name for name in ("recording.yml", "alerts.yml")]
AGENT = "steady"  # the $agent the detail panels are checked with: the one with the rollouts
#: Passes even when a busy machine sends its candidate no message within a step (then its verdict is no_data).
CANARY_PASSES = {"strategy": "canary", "steps": [50, 100], "interval": "1s",
                 "analysis": {"min_requests": 1, "on_no_data": "pass"}}
CANARY_PAUSES = {"strategy": "canary", "steps": [50, 100], "interval": "1s",
                 "analysis": {"min_requests": 100000, "on_no_data": "pause"}}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def targets() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    return [(panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def substitute(expr: str, instance: str) -> str:
    """What Grafana sends for one engine and agent: template variables replaced."""
    return expr.replace("$__rate_interval", "1m").replace("$instance", re.escape(instance).replace("\\", "\\\\")) \
        .replace("$agent", AGENT)


class Load(threading.Thread):
    """Messages every ~50 ms and a memory search every ~0.5 s until stopped; failures are part of the load."""

    def __init__(self, engine: EngineProcess) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.halt = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # noqa: BLE001 - reported by stop()
            self.error = error

    def _run(self) -> None:
        with self.engine.client(timeout=10.0) as client:
            while not self.halt.wait(0.05):
                for name in ("steady", "flaky", "helper"):
                    content: Any = {"n": self.sent} if name != "helper" else f"n={self.sent}\n" + HELPER_TOOL_LINE
                    try:
                        agent_api.send(client, name, content, conversation_id=f"c{self.sent}")  # new ones: a canary's share
                    except CaxtonError:
                        pass  # flaky fails every 5th message; an agent can be mid-swap
                if self.sent % 10 == 0:  # an embedding costs CPU
                    try:
                        memory.search(client, "fact number", k=3)
                    except CaxtonError:
                        pass  # the embedding model may still be loading
                self.sent += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        assert self.error is None, self.error


#: What each message to the config agent asks of its tool (the offline provider's ``/tool`` lines, docs/tools.md).
HELPER_TOOL_LINE = '/tool calculator {"expression": "6 * 7"}'


def write_config_agent(root: Path) -> None:
    spec = {"name": "helper", "version": "1.0.0", "system_prompt": "You help.",
            "user_prompt_template": "Request: {{ request }}", "tools": ["calculator"]}
    (root / "agents" / "helper.md").write_text("---\n" + yaml.safe_dump(spec) + "---\n\nA config agent.\n")


def apply(run_cli: Any, engine: EngineProcess, root: Path, *extra: str) -> None:
    done = run_cli("apply", str(root / "agents"), "--engine", engine.url, "--auto-approve", *extra)
    assert done.code == 0, done.out + done.err


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EngineProcess, str]]:
    root = tmp_path_factory.mktemp("dashboard")
    config = root / "caxton.yaml"
    config.write_text("backups:\n  interval: 3s\n  retention: 2\n")
    with running_engine(root, config=config) as engine, \
            running_prometheus(root / "prometheus", f"127.0.0.1:{engine.port}", RULE_FILES) as url:
        yield engine, url


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


def test_every_panel_shows_data_from_an_engine_under_load(
    run_cli: Any, scraped: tuple[EngineProcess, str], tmp_path: Path,
) -> None:
    engine, prometheus = scraped
    instance = f"127.0.0.1:{engine.port}"
    write_agent(tmp_path, 1, name="steady")
    write_agent(tmp_path, 1, name="flaky", faulty=True)
    write_config_agent(tmp_path)
    apply(run_cli, engine, tmp_path)
    load = Load(engine)
    load.start()
    try:
        with engine.client(timeout=60.0) as client:
            memory.add(client, [{"name": f"fact-{i}", "entity_type": "fact", "observations": [f"fact number {i}"]}
                                for i in range(5)])
            write_agent(tmp_path, 2, CANARY_PASSES, name="steady")
            apply(run_cli, engine, tmp_path)  # waits: the canary passes its two steps
            client.request("POST", "/backups")
            write_agent(tmp_path, 3, CANARY_PAUSES, name="steady")
            apply(run_cli, engine, tmp_path, "--no-wait")  # pauses at its first step: no data
            # after the last apply, which would remove the failed agent (not in git) and its series
            refused = {**agents.spec("sneaky", 1), "security_policy": {"allowed_imports": ["caxton.log"]}}
            with pytest.raises(CaxtonError):  # the module imports caxton.clock_ms: a security violation
                agent_api.deploy(client, refused, agents.module(1))
        empty = _wait_for_data(prometheus, instance)
    finally:
        load.stop()
    assert not empty, "panels without data:\n" + "\n".join(f"  {title}: {expr}" for title, expr in empty)
    _check_variables(prometheus, instance)
    _check_rules_evaluate(prometheus)


def _wait_for_data(prometheus: str, instance: str, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Poll until every panel's query returns a finite sample (rates need two scrapes, rules an evaluation)."""
    deadline = time.monotonic() + timeout
    while True:
        empty = [(title, expr) for title, expr in targets()
                 if not finite(query(prometheus, substitute(expr, instance)))]
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(0.5)


def _check_variables(prometheus: str, instance: str) -> None:
    """label_values(metric, label) of each template variable finds this engine and this agent."""
    found = {}
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        result = query(prometheus, substitute(match.group(1), instance))
        found[variable["name"]] = {sample["metric"][match.group(2)] for sample in result}
    assert instance in found["instance"]
    assert {"steady", "flaky", "helper"} <= found["agent"]


def _check_rules_evaluate(prometheus: str) -> None:
    """Prometheus loaded every shipped rule and evaluates each without error; the paused canary shows."""
    groups = httpx.get(prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == sum(len(g["rules"]) for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"])
    assert all(rule["health"] == "ok" for rule in loaded), [r for r in loaded if r["health"] != "ok"]
    violation = [r for r in loaded if r["name"] == "CaxtonWasmSecurityViolation"][0]
    assert [a["labels"]["agent"] for a in violation["alerts"]] == ["sneaky"]  # no 'for': it fires at once


def test_the_dashboard_is_grafana_json_over_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39 and board["uid"] == "caxton"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["agent"]["type"] == "query" and not variables["agent"]["multi"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["datasource"] == panel["datasource"] for t in panel["targets"])
    detail = [t for t in targets() if "$agent" in t[1]]
    assert len(detail) >= 8  # the agent detail section follows the $agent variable


def test_the_seeds_tool_panels_and_alert_are_there() -> None:
    """The seeds' "Tool Call Latency (P95)" panel and "tool calls stuck" alert (the load above gives them data)."""
    queries = dict(targets())
    latency = queries["Tool call latency p95"]
    assert latency.startswith("histogram_quantile(0.95, ") and "caxton_tool_call_duration_seconds_bucket" in latency
    assert "caxton_tool_calls_total" in queries["Tool calls by outcome"]
    assert "caxton_tool_calls_active" in queries["Tool calls running"]
    alerts = [rule for group in yaml.safe_load(RULE_FILES[1].read_text())["groups"] for rule in group["rules"]]
    assert "caxton_tool_calls_active" in [r for r in alerts if r["alert"] == "CaxtonToolCallsStuck"][0]["expr"]
