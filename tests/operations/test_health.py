"""The health vocabulary (healthy|degraded|unhealthy) and the root probes /healthz and /readyz, on a live engine."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.errors import CaxtonError
from tests.conftest import CliResult
from tests.engine.helpers import SCORER_WASM, wasm_spec, wat_module
from tests.support.engine import EngineProcess, running_engine

TOKEN = "health-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with running_engine(tmp_path_factory.mktemp("health") / "data", token=TOKEN) as engine:
        yield engine


def test_the_root_probes_answer_as_the_api_ones_without_a_token(served: EngineProcess) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as http:
        assert http.get("/api/v1/agents").status_code == 401  # a token is required elsewhere
        healthz, health = http.get("/healthz"), http.get("/api/v1/health")
        assert healthz.status_code == health.status_code == 200
        assert healthz.json() == health.json()
        assert healthz.json()["status"] == "healthy" and healthz.json()["phase"] == "serving"
        readyz = http.get("/readyz")
        assert readyz.status_code == 200 and readyz.json() == http.get("/api/v1/ready").json() == {"ready": True}


def test_the_cli_says_healthy_then_degraded_when_an_agent_failed(
    run_cli: Callable[..., CliResult], served: EngineProcess, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAXTON_API_TOKEN", TOKEN)
    client = served.client()
    agent_api.deploy(client, wasm_spec("scorer"), SCORER_WASM)
    shown = run_cli("health", "--engine", served.url, "--detailed")
    assert shown.code == 0 and f"engine {served.url}: healthy" in shown.out
    with pytest.raises(CaxtonError):
        agent_api.deploy(client, wasm_spec("broken"), wat_module(init="unreachable"))  # a new agent that cannot start: Failed
    assert status_api.health(client).status == "healthy"  # liveness: the engine itself is fine
    detailed = run_cli("health", "--engine", served.url, "--detailed", "--output", "json")
    assert detailed.code == 1 and json.loads(detailed.out)["status"] == "degraded"
    assert json.loads(detailed.out)["agents_by_state"]["Failed"] == 1
