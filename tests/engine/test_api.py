"""The HTTP API over a real in-process engine: endpoints, contracts, errors, limits."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from caxton.engine.state.migrations import MIGRATIONS
from caxton.spec.digest import sha256_hex, spec_digest
from caxton.spec.project import ProjectConfig
from caxton.spec.state import StateSnapshot
from tests.engine.helpers import (
    SCORER_WASM,
    config_spec,
    deploy_body,
    wasm_spec,
    wat_module,
)

V1 = "/api/v1"


def _deploy(api: TestClient, spec: dict[str, object], module: bytes | None = None, **source: object) -> dict[str, object]:
    response = api.put(f"{V1}/agents/{spec['name']}", json=deploy_body(spec, module, **source))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error: dict[str, object] = response.json()["error"]
    assert error["code"] == code and error["message"] and "hint" in error
    return error


def test_health_ready_and_openapi(api: TestClient) -> None:
    assert api.get(f"{V1}/health").json() == {"status": "healthy", "phase": "serving", "memory_backend": "sqlite", "agents": 0}
    assert api.get(f"{V1}/ready").json() == {"ready": True}
    detailed = api.get(f"{V1}/health/detailed").json()
    assert detailed["store"]["migrations"] == [name for name, _ in MIGRATIONS] and detailed["serial"] == 0
    paths = api.get("/openapi.json").json()["paths"]
    assert {f"{V1}/agents/{{name}}", f"{V1}/agents/{{name}}/messages", f"{V1}/state", f"{V1}/events"} <= set(paths)


def test_deploy_then_messages_get_real_answers_from_wasm_and_config_agents(api: TestClient) -> None:
    wasm = _deploy(api, wasm_spec("scorer"), SCORER_WASM, actor="ci", plan_id="p1", git_commit="c1")
    assert wasm["state"] == "Running" and wasm["revision"] == 1 and wasm["action"] == "deployed"
    config = _deploy(api, config_spec("DataProcessor"))
    assert config["state"] == "Active" and config["agent"] == "data-processor"

    reply = api.post(f"{V1}/agents/scorer/messages", json={"content": "hello"}).json()
    assert reply["reply"]["agent"] == "scorer" and reply["reply"]["score"] > 0 and reply["revision"] == 1
    answer = api.post(f"{V1}/agents/data_processor/messages", json={"content": "sum the column"}).json()
    assert "Request: sum the column" in answer["reply"]["reply"]  # the offline provider echoes the prompt


def test_state_snapshot_is_the_plan_contract(api: TestClient) -> None:
    _deploy(api, wasm_spec("scorer"), SCORER_WASM, plan_id="p1", git_commit="c1")
    snapshot = StateSnapshot.model_validate(api.get(f"{V1}/state").json())
    assert snapshot.serial == 1
    (agent,) = snapshot.agents
    assert agent.module_sha256 == sha256_hex(SCORER_WASM)
    assert agent.spec_digest == spec_digest(agent.spec, agent.module_sha256) == agent.applied_spec_digest
    assert (agent.state, agent.revision, agent.traffic) == ("Running", 1, {"1": 100})
    assert (agent.plan_id, agent.git_commit, agent.version) == ("p1", "c1", "1.0.0")


def test_redeploying_the_same_spec_changes_nothing(api: TestClient) -> None:
    _deploy(api, config_spec("a"))
    again = _deploy(api, config_spec("a"))
    assert again["action"] == "unchanged" and again["revision"] == 1 and again["serial"] == 1


def test_update_swaps_to_a_new_revision_and_keeps_history(api: TestClient) -> None:
    _deploy(api, config_spec("a"))
    updated = _deploy(api, config_spec("a", version="1.1.0"))
    assert (updated["revision"], updated["previous_revision"]) == (2, 1)
    agent = api.get(f"{V1}/agents/A").json()
    assert agent["version"] == "1.1.0" and [r["number"] for r in agent["revisions"]] == [1, 2]
    assert api.post(f"{V1}/agents/a/messages", json={"content": "x"}).json()["revision"] == 2


def test_suspend_resume_remove_walk_the_state_machine(api: TestClient) -> None:
    _deploy(api, wasm_spec("scorer"), SCORER_WASM)
    assert api.post(f"{V1}/agents/scorer/suspend").json()["state"] == "Draining"
    _error(api.post(f"{V1}/agents/scorer/messages", json={"content": "x"}), 503, "unavailable")
    _error(api.post(f"{V1}/agents/scorer/suspend"), 409, "illegal_transition")
    assert api.post(f"{V1}/agents/scorer/resume").json()["state"] == "Running"
    assert api.post(f"{V1}/agents/scorer/messages", json={"content": "x"}).status_code == 200
    assert api.delete(f"{V1}/agents/scorer").json()["state"] == "Stopped"
    _error(api.get(f"{V1}/agents/scorer"), 404, "not_found")
    transitions = [(e["from_state"], e["to_state"]) for e in api.get(f"{V1}/events?agent=scorer").json()["events"]
                   if e["what"] == "transition"]
    assert transitions == [("Unloaded", "Loaded"), ("Loaded", "Running"), ("Running", "Draining"),
                           ("Draining", "Running"), ("Running", "Draining"), ("Draining", "Stopped")]


def test_deploy_errors_are_clear_4xx(api: TestClient) -> None:
    bad = api.put(f"{V1}/agents/x", json=deploy_body({"name": "x", "version": "one"}))
    error = _error(bad, 422, "validation_failed")
    assert "version" in str(error["message"]) and error["details"]
    _error(api.put(f"{V1}/agents/other", json=deploy_body(config_spec("x"))), 422, "invalid_input")
    _error(api.put(f"{V1}/agents/scorer", json=deploy_body(wasm_spec("scorer"))), 422, "invalid_input")
    body = deploy_body(wasm_spec("scorer"))
    body["module"] = "not base64!"
    _error(api.put(f"{V1}/agents/scorer", json=body), 422, "invalid_input")
    pinned = {**wasm_spec("scorer"), "sha256": "0" * 64}
    _error(api.put(f"{V1}/agents/scorer", json=deploy_body(pinned, SCORER_WASM)), 422, "validation_failed")
    _deploy(api, config_spec("scorer"))
    _error(api.put(f"{V1}/agents/scorer", json=deploy_body(wasm_spec("scorer"), SCORER_WASM)), 409, "conflict")


def test_malformed_requests_get_4xx_never_500(api: TestClient) -> None:
    _deploy(api, config_spec("a"))
    for response in (
        api.post(f"{V1}/agents/a/messages", content=b"{not json", headers={"content-type": "application/json"}),
        api.post(f"{V1}/agents/a/messages", json={"conversation_id": "c"}),
        api.post(f"{V1}/agents/a/messages", json=[1, 2]),
        api.put(f"{V1}/agents/a", json={"spec": "nope"}),
        api.get(f"{V1}/events?limit=-1"),
    ):
        _error(response, 422, "invalid_input")
    _error(api.get(f"{V1}/nowhere"), 404, "not_found")
    _error(api.post(f"{V1}/agents/ghost/messages", json={"content": "x"}), 404, "not_found")


def test_bodies_over_the_limits_get_413(make_api: Callable[..., TestClient]) -> None:
    config = ProjectConfig.model_validate({"server": {"max_request_size": "8KiB", "max_message_size": "1KiB"}})
    api = make_api(config)
    _deploy(api, config_spec("a"))
    _error(api.post(f"{V1}/agents/a/messages", json={"content": "x" * 9000}), 413, "payload_too_large")

    def chunks() -> object:
        yield b'{"content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    streamed = api.post(f"{V1}/agents/a/messages", content=chunks(), headers={"content-type": "application/json"})
    _error(streamed, 413, "payload_too_large")
    message = api.post(f"{V1}/agents/a/messages", json={"content": "y" * 2000})
    assert "1024 bytes" in str(_error(message, 413, "payload_too_large")["message"])
    assert api.post(f"{V1}/agents/a/messages", json={"content": "y" * 500}).status_code == 200


def test_a_module_that_cannot_start_leaves_the_old_revision_serving(api: TestClient) -> None:
    _deploy(api, wasm_spec("scorer"), SCORER_WASM)
    broken = wat_module(init="unreachable")
    response = api.put(f"{V1}/agents/scorer", json=deploy_body(wasm_spec("scorer", version="2.0.0"), broken))
    assert 400 <= response.status_code < 500
    assert "revision 1 keeps serving" in response.json()["error"]["message"]
    reply = api.post(f"{V1}/agents/scorer/messages", json={"content": "x"}).json()
    assert reply["revision"] == 1 and reply["reply"]["agent"] == "scorer"
    whats = [e["what"] for e in api.get(f"{V1}/events?agent=scorer").json()["events"]]
    assert whats[-1] == "deploy_failed"
    assert api.get(f"{V1}/agents/scorer").json()["state"] == "Running"
    fixed = _deploy(api, wasm_spec("scorer", version="2.0.1"), wat_module())
    assert fixed["revision"] == 3  # number 2 went to the failed attempt: never reused


def test_a_new_agent_that_cannot_start_is_failed_and_can_be_fixed(api: TestClient) -> None:
    response = api.put(f"{V1}/agents/bad", json=deploy_body(wasm_spec("bad"), wat_module(init="unreachable")))
    assert 400 <= response.status_code < 500
    agent = api.get(f"{V1}/agents/bad").json()
    assert agent["state"] == "Failed" and agent["traffic"] == {}
    _error(api.post(f"{V1}/agents/bad/messages", json={"content": "x"}), 503, "unavailable")
    fixed = _deploy(api, wasm_spec("bad", version="1.0.1"), wat_module())
    assert fixed["state"] == "Running" and fixed["revision"] == 2
    assert api.post(f"{V1}/agents/bad/messages", json={"content": "x"}).json()["reply"] == {"ok": True}


def test_logs_events_and_metrics(api: TestClient) -> None:
    _deploy(api, wasm_spec("scorer"), SCORER_WASM)
    api.post(f"{V1}/agents/scorer/messages", json={"content": "x"})
    lines = api.get(f"{V1}/agents/scorer/logs").json()["lines"]
    assert any(line["message"] == "scorer ready" for line in lines)  # the module's caxton.log in init
    events = api.get(f"{V1}/events?after=0&limit=2").json()
    assert len(events["events"]) == 2 and events["serial"] == 1
    text = api.get("/metrics").text
    for name in ("caxton_server_uptime_seconds", "caxton_agents", "caxton_agent_messages_total",
                 "caxton_agent_response_duration_seconds_bucket", "caxton_wasm_fuel_consumed_total"):
        assert name in text
    assert 'caxton_agent_messages_total{agent="scorer",revision="1"}' in text
