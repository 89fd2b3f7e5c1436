"""The Prometheus analysis provider against a real Prometheus server scraping a real engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton.engine.core import Engine
from tests.rollouts import agents
from tests.rollouts.conftest import start
from tests.rollouts.prometheus_server import running_prometheus
from tests.rollouts.test_durability import create, http_load, rollout_of, write_agent
from tests.support.engine import EngineProcess, no_memory, running_engine

#: The candidate's error ratio over the last 5 s, as Prometheus computes it from the engine's /metrics.
ERROR_RATIO = (
    '(sum(rate(caxton_agent_errors_total{agent="$agent",revision="$revision"}[5s])) or vector(0))'
    ' / sum(rate(caxton_agent_messages_total{agent="$agent",revision="$revision"}[5s]))'
)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EngineProcess, str, Path]]:
    """One engine scraped by one Prometheus, and one agents repo, for the module (Prometheus takes ~5 s
    to pick up a target)."""
    root = tmp_path_factory.mktemp("prometheus")
    with running_engine(root, config=no_memory(root)) as engine, running_prometheus(root / "prometheus", f"127.0.0.1:{engine.port}") as url:
        yield engine, url, root / "repo"


def canary(prometheus: str) -> dict[str, Any]:
    # The engine's own error rule is off (max_error_rate 1): the verdict is Prometheus's.
    return {"strategy": "canary", "steps": [50, 100], "interval": "1.5s",
            "analysis": {"max_error_rate": 1.0, "min_requests": 5, "on_no_data": "fail",
                         "prometheus": {"url": prometheus, "query": ERROR_RATIO, "threshold": 0.05}}}


def apply(run_cli: Any, engine: EngineProcess, root: Path, name: str, rollout: dict[str, Any], *,
          faulty: bool = False) -> Any:
    write_agent(root, 2, rollout, name=name, faulty=faulty)
    return run_cli("apply", str(root / "agents"), "--engine", engine.url, "--auto-approve")


def test_a_healthy_canary_passes_the_prometheus_query(run_cli: Any, scraped: tuple[EngineProcess, str, Path]) -> None:
    engine, prometheus, repo = scraped
    create(run_cli, engine, repo, "healthy")
    with http_load(engine, name="healthy") as load:
        done = apply(run_cli, engine, repo, "healthy", canary(prometheus))
    assert done.code == 0, done.out + done.err
    rollout = rollout_of(engine, "healthy")
    assert rollout["status"] == "succeeded"
    queried = [m for m in rollout["measurements"] if m["metric"].startswith("prometheus: ")]
    assert len(queried) == 2 and all(m["verdict"] == "pass" and m["value"] == 0 for m in queried)
    assert 'revision="2"' in queried[0]["metric"]
    load.assert_only_failures_of(None)


def test_a_faulty_canary_is_rolled_back_by_the_prometheus_query(run_cli: Any, scraped: tuple[EngineProcess, str, Path]) -> None:
    engine, prometheus, repo = scraped
    create(run_cli, engine, repo, "faulty")
    with http_load(engine, name="faulty") as load:
        done = apply(run_cli, engine, repo, "faulty", canary(prometheus), faulty=True)
    assert done.code == 3, done.out + done.err
    rollout = rollout_of(engine, "faulty")
    assert rollout["status"] == "rolled_back"
    failed = [m for m in rollout["measurements"] if m["verdict"] == "fail"]
    assert len(failed) == 1 and failed[0]["metric"].startswith("prometheus: ")
    assert 0.1 < failed[0]["value"] < 0.3 and failed[0]["threshold"] == 0.05
    assert "prometheus: " in rollout["reason"] and "> 0.05" in rollout["reason"]
    load.assert_only_failures_of(2)


def test_an_unreachable_prometheus_is_no_data_never_a_pass(echo_engine: Engine) -> None:
    rollout = {"strategy": "canary", "steps": [50, 100], "interval": 0.3,
               "analysis": {"min_requests": 0, "on_no_data": "fail",
                            "prometheus": {"url": "http://127.0.0.1:9", "query": "up", "threshold": 1}}}
    started = start(echo_engine, rollout, agents.module(2))
    done = echo_engine.rollouts.wait(started["rollout"], timeout=10)
    assert done.status == "rolled_back"
    assert "no data" in done.reason and "query to http://127.0.0.1:9/api/v1/query failed" in done.reason
