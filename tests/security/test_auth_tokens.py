"""Tokens over real HTTP: bad tokens are 401, roles are 403 naming the role, memory is closed, actors are names."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.helpers import SCORER_WASM, wasm_spec
from tests.security.auth_tokens import AuthEngine, auth_engine

V1 = "/api/v1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEngine]:
    with auth_engine(tmp_path_factory.mktemp("tokens")) as engine:
        yield engine


def _deploy(served: AuthEngine, name: str, token: str = "deployer", actor: str | None = None) -> None:
    body = {"spec": wasm_spec(name), "module": base64.b64encode(SCORER_WASM).decode(),
            "source": {"actor": actor} if actor else None}
    response = served.call("PUT", f"{V1}/agents/{name}", token, json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Basic dXNlcjpwYXNz", "bearer two words", "Bearer cxt_00000000_" + "x" * 40,
    "Token abc", "Bearer a,b", "Bearer wrong-token",
])
def test_missing_malformed_wrong_scheme_and_wrong_tokens_are_401(served: AuthEngine, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in (("GET", "/state"), ("GET", "/memory/export"), ("POST", "/agents/x/suspend")):
        response = served.call(method, V1 + path, headers=headers)
        assert response.status_code == 401, (header, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert set(response.json()) == {"error"} and response.json()["error"]["code"] == "unauthorized"


def test_an_expired_token_is_401_saying_so(served: AuthEngine) -> None:
    response = served.call("GET", V1 + "/state", "expired")
    assert response.status_code == 401
    assert "token 'expired' expired at" in response.json()["error"]["message"]


def test_a_token_in_the_query_string_is_refused(served: AuthEngine) -> None:
    token = served.tokens["root"]
    for query in (f"access_token={token}", f"token={token}", f"api_token={token}"):
        response = served.call("GET", f"{V1}/state?{query}")
        assert response.status_code == 401, query
        assert "query string" in response.json()["error"]["message"]
        assert token not in response.text
    # even alongside a valid header: the token has leaked into the URL
    assert served.call("GET", f"{V1}/state?access_token={token}", "root").status_code == 401


def test_each_role_does_its_job_and_no_more(served: AuthEngine) -> None:
    _deploy(served, "scorer")
    _deploy(served, "other")
    send = {"content": {"text": "hello"}}
    assert served.call("POST", f"{V1}/agents/scorer/messages", "messenger", json=send).status_code == 200
    assert served.call("POST", f"{V1}/agents/other/messages", "messenger", json=send).status_code == 200
    assert served.call("POST", f"{V1}/agents/scorer/messages", "scorer-only", json=send).status_code == 200
    limited = served.call("POST", f"{V1}/agents/other/messages", "scorer-only", json=send)
    assert limited.status_code == 403 and "may not message agent 'other'" in limited.json()["error"]["message"]
    for token in ("reader", "memory-writer", "messenger"):
        refused = served.call("POST", f"{V1}/agents/scorer/suspend", token, json={})
        assert refused.status_code == 403 and "needs the 'deploy' role" in refused.json()["error"]["message"]
    assert served.call("GET", f"{V1}/agents/scorer", "messenger").status_code == 403
    assert served.call("GET", f"{V1}/agents/scorer", "reader").json()["name"] == "scorer"
    assert served.call("GET", f"{V1}/agents/scorer", "deployer").status_code == 200  # deploy implies read
    imported = served.call("POST", f"{V1}/memory/import", "memory-writer", content=b"",
                           headers={"Content-Type": "application/x-ndjson"})
    assert imported.status_code == 403 and "'admin' role" in imported.json()["error"]["message"]


def test_events_and_lock_holders_record_the_token_name(served: AuthEngine) -> None:
    _deploy(served, "audited", actor="alice")
    assert served.call("POST", f"{V1}/agents/audited/suspend", "deployer", json={}).status_code == 200
    events = served.call("GET", f"{V1}/events?agent=audited", "reader").json()["events"]
    actors = [event.get("actor") for event in events]
    assert "deployer (alice)" in actors and "deployer" in actors, events
    lock = served.call("POST", f"{V1}/lock", "deployer", json={"holder": "ci-job-7", "ttl": 60})
    assert lock.status_code == 200, lock.text
    assert served.call("GET", f"{V1}/lock", "reader").json()["lease"]["holder"] == "deployer (ci-job-7)"
    released = served.call("DELETE", f"{V1}/lock?token={lock.json()['token']}", "deployer")
    assert released.status_code == 200, released.text


def test_unauthenticated_memory_reads_return_nothing(served: AuthEngine) -> None:
    """The issue's leak: export, entities and search were open with a token configured."""
    fact = {"name": "server", "entity_type": "host", "observations": ["root password is hunter2"]}
    stored = served.call("POST", f"{V1}/memory/entities", "memory-writer", json=fact)
    assert stored.status_code in (200, 201), stored.text
    leaks = [
        served.call("GET", f"{V1}/memory/export"),
        served.call("GET", f"{V1}/memory/entities"),
        served.call("POST", f"{V1}/memory/search", json={"query": "root password"}),
        served.call("GET", f"{V1}/memory/export", "reader"),
        served.call("GET", f"{V1}/memory/export", "messenger"),
    ]
    assert [r.status_code for r in leaks] == [401, 401, 401, 403, 403]
    assert all("hunter2" not in r.text for r in leaks)
    exported = served.call("GET", f"{V1}/memory/export", "memory-reader")
    assert exported.status_code == 200 and "hunter2" in exported.text


def test_probes_stay_open_and_metrics_need_read(served: AuthEngine) -> None:
    assert served.call("GET", f"{V1}/health").status_code == 200
    assert served.call("GET", f"{V1}/ready").status_code == 200
    assert served.call("GET", "/metrics").status_code == 401
    assert served.call("GET", "/metrics", "reader").status_code == 200


def test_metrics_auth_none_opens_metrics_only(tmp_path: Path) -> None:
    with auth_engine(tmp_path, config={"observability": {"metrics_auth": "none"}}) as served:
        assert served.call("GET", "/metrics").status_code == 200
        assert served.call("GET", f"{V1}/state").status_code == 401


def test_a_cross_origin_request_is_refused_even_with_a_valid_token(served: AuthEngine) -> None:
    response = served.call("GET", V1 + "/state", "root", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and "cross-origin" in response.json()["error"]["message"]
    rebinding = served.call("GET", V1 + "/state", "root", headers={"Host": "evil.example"})
    assert rebinding.status_code == 403
