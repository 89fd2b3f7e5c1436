"""With an API token configured, every endpoint but the probes needs it (issue 12: reads too)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from caxton.spec.project import ProjectConfig
from tests.engine.helpers import config_spec, deploy_body

V1 = "/api/v1"
TOKEN = "s3cret-token"


def _api(make_api: Callable[..., TestClient]) -> TestClient:
    return make_api(ProjectConfig.model_validate({"security": {"api_token": TOKEN}}))


def test_mutating_endpoints_refuse_a_missing_or_wrong_token(make_api: Callable[..., TestClient]) -> None:
    api = _api(make_api)
    calls = [
        ("PUT", f"{V1}/agents/a", deploy_body(config_spec("a"))),
        ("POST", f"{V1}/agents/a/messages", {"content": "x"}),
        ("POST", f"{V1}/agents/a/suspend", None),
        ("POST", f"{V1}/agents/a/resume", None),
        ("DELETE", f"{V1}/agents/a", None),
    ]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, url, body in calls:
            response = api.request(method, url, json=body, headers=headers)
            assert response.status_code == 401, (method, url, headers)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    agents = api.get(f"{V1}/agents", headers={"Authorization": f"Bearer {TOKEN}"}).json()["agents"]
    assert agents == []  # nothing got through


def test_the_right_token_works_and_reads_need_it_too(make_api: Callable[..., TestClient]) -> None:
    api = _api(make_api)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert api.put(f"{V1}/agents/a", json=deploy_body(config_spec("a")), headers=auth).status_code == 200
    assert api.post(f"{V1}/agents/a/messages", json={"content": "x"}, headers=auth).status_code == 200
    for path in ("/health/detailed", "/state", "/agents", "/agents/a", "/agents/a/logs", "/events"):
        assert api.get(V1 + path, headers=auth).status_code == 200, path
        assert api.get(V1 + path).status_code == 401, path
    for path in ("/health", "/ready"):  # the probes stay open
        assert api.get(V1 + path).status_code == 200, path
    assert api.get("/metrics", headers=auth).status_code == 200
    assert api.get("/metrics").status_code == 401
