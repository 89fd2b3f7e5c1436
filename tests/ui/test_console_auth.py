"""The console's auth over HTTP (the real app, in process): login, the session cookie, CSRF, roles, logout.

The cookie holds an opaque session id (never the token), is HttpOnly and SameSite=Strict, counts
for the console and for reads of the API, and never for the API's state-changing routes; the
console's forms need the session's CSRF token and the deploy role; a token revoked by a reload
ends its sessions; an engine without tokens serves the console open, its forms still CSRF-checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from caxton.engine.core import Engine
from caxton.engine.http.app import create_app
from caxton.engine.sessions import COOKIE
from caxton.spec.project import ProjectConfig
from tests.security.auth_tokens import write_tokens

ROLES = {"reader": (["read"], None, None), "deployer": (["deploy"], None, None), "root": (["admin"], None, None)}
AGENT = {"name": "helper", "version": "1.0.0", "system_prompt": "You help."}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _config(tokens_file: Path | None) -> ProjectConfig:
    security = {"tokens_file": str(tokens_file)} if tokens_file else {}
    return ProjectConfig.model_validate({"memory": {"enabled": False}, "security": security})


@pytest.fixture
def make_console(tmp_path: Path) -> Iterator[Callable[[bool], tuple[TestClient, dict[str, str]]]]:
    clients: list[TestClient] = []

    def make(with_tokens: bool = True, scheme: str = "http") -> tuple[TestClient, dict[str, str]]:
        tokens = write_tokens(tmp_path / "tokens.yaml", ROLES) if with_tokens else {}
        config = _config(tmp_path / "tokens.yaml" if with_tokens else None)
        client = TestClient(create_app(Engine(config, tmp_path / "data")), raise_server_exceptions=False,
                            base_url=f"{scheme}://127.0.0.1", follow_redirects=False)
        client.__enter__()
        clients.append(client)
        headers = {"Authorization": f"Bearer {tokens['root']}"} if with_tokens else {}
        deployed = client.put("/api/v1/agents/helper", json={"spec": AGENT}, headers=headers)
        assert deployed.status_code == 200, deployed.text
        return client, tokens

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _login(client: TestClient, token: str, next_page: str = "/ui") -> str:
    done = client.post("/ui/login", data={"token": token, "next": next_page})
    assert done.status_code == 303, done.text
    return str(done.headers["set-cookie"])


def _csrf(client: TestClient, page: str) -> str:
    found = CSRF.search(client.get(page).text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def test_a_console_page_without_a_session_redirects_to_login_and_the_api_still_answers_401(make_console) -> None:
    client, _ = make_console()
    page = client.get("/ui/agent?name=helper")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fagent%3Fname%3Dhelper"
    assert client.get("/api/v1/agents").status_code == 401
    login = client.get("/ui/login")
    assert login.status_code == 200 and 'type="password"' in login.text


def test_login_sets_an_opaque_httponly_strict_cookie_and_returns_to_the_page(make_console) -> None:
    client, tokens = make_console()
    done = client.post("/ui/login", data={"token": tokens["reader"], "next": "/ui/agent?name=helper"})
    assert done.status_code == 303 and done.headers["location"] == "/ui/agent?name=helper"
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and tokens["reader"] not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/;" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under TLS it is Secure (below)
    page = client.get("/ui/agent?name=helper")
    assert page.status_code == 200 and "helper" in page.text and "reader" in page.text
    assert "Content-Security-Policy" in page.headers and "default-src 'self'" in page.headers["content-security-policy"]


def test_a_wrong_token_is_refused_on_the_login_page(make_console) -> None:
    client, _ = make_console()
    done = client.post("/ui/login", data={"token": "cxt_00000000_" + "x" * 30, "next": "/ui"})
    assert done.status_code == 401 and "not valid" in done.text and "set-cookie" not in done.headers


def test_login_never_redirects_off_the_console(make_console) -> None:
    client, tokens = make_console()
    for target in ("https://evil.example/ui", "//evil.example/ui", "/api/v1/agents", "/ui\\@evil.example"):
        done = client.post("/ui/login", data={"token": tokens["reader"], "next": target})
        assert done.headers["location"] == "/ui", target


def test_the_session_reads_the_api_but_never_changes_it(make_console) -> None:
    client, tokens = make_console()
    _login(client, tokens["root"])
    assert client.get("/api/v1/agents").status_code == 200
    refused = client.post("/api/v1/agents/helper/suspend", json={})
    assert refused.status_code == 401
    assert client.get("/api/v1/agents/helper").json()["state"] == "Active"


def test_forms_need_the_csrf_token_and_the_deploy_role(make_console) -> None:
    client, tokens = make_console()
    _login(client, tokens["reader"])
    page = client.get("/ui/agent?name=helper")
    assert ">Suspend</button>" not in page.text and "action=\"/ui/agent/suspend\"" not in page.text
    reader_csrf = _csrf(client, "/ui")  # the logout form's
    refused = client.post("/ui/agent/suspend", data={"name": "helper", "csrf": reader_csrf})
    assert refused.status_code == 403 and "deploy" in refused.json()["error"]["message"]

    _login(client, tokens["deployer"])
    assert ">Suspend</button>" in client.get("/ui/agent?name=helper").text
    stale = client.post("/ui/agent/suspend", data={"name": "helper", "csrf": reader_csrf})
    assert stale.status_code == 403 and "CSRF" in stale.text
    done = client.post("/ui/agent/suspend", data={"name": "helper", "csrf": _csrf(client, "/ui/agent?name=helper"),
                                                  "back": "/ui/agent?name=helper"})
    assert done.status_code == 303 and done.headers["location"] == "/ui/agent?name=helper&notice=suspended%20helper"
    agent = client.get("/api/v1/agents/helper").json()
    assert agent["state"] == "Suspended"
    assert any("deployer" in (event["actor"] or "") for event in agent["events"])


def test_logout_ends_the_session(make_console) -> None:
    client, tokens = make_console()
    _login(client, tokens["reader"])
    cookie = client.cookies.get(COOKIE)
    done = client.post("/ui/logout", data={"csrf": _csrf(client, "/ui")})
    assert done.status_code == 303 and done.headers["location"] == "/ui/login"
    assert f'{COOKIE}=""' in done.headers["set-cookie"] or "Max-Age=0" in done.headers["set-cookie"]
    client.cookies.set(COOKIE, cookie or "")
    assert client.get("/ui").status_code == 303


def test_a_token_revoked_by_a_reload_ends_its_sessions(make_console, tmp_path: Path) -> None:
    client, tokens = make_console()
    _login(client, tokens["reader"])
    assert client.get("/ui").status_code == 200
    write_tokens(tmp_path / "tokens.yaml", {"root": ROLES["root"]})  # the reader is gone
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    assert engine.reload(_config(tmp_path / "tokens.yaml")) == 0
    assert client.get("/ui").status_code == 303
    assert client.get("/api/v1/agents").status_code == 401


def test_an_engine_without_tokens_serves_the_console_open_with_csrf_checked_forms(make_console) -> None:
    client, _ = make_console(False)
    page = client.get("/ui/agent?name=helper")
    assert page.status_code == 200 and "open engine" in page.text and ">Suspend</button>" in page.text
    assert "HttpOnly" in page.headers["set-cookie"]
    assert client.post("/ui/agent/suspend", data={"name": "helper", "csrf": "guess"}).status_code == 403
    done = client.post("/ui/agent/suspend", data={"name": "helper", "csrf": _csrf(client, "/ui/agent?name=helper")})
    assert done.status_code == 303
    assert client.get("/api/v1/agents/helper").json()["state"] == "Suspended"


def test_a_foreign_origin_cannot_post_a_form(make_console) -> None:
    client, _ = make_console(False)
    csrf = _csrf(client, "/ui/agent?name=helper")
    refused = client.post("/ui/agent/resume", data={"name": "helper", "csrf": csrf},
                          headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403


def test_unknown_agents_and_missing_names_are_error_pages(make_console) -> None:
    client, _ = make_console(False)
    missing = client.get("/ui/agent?name=nobody")
    assert missing.status_code == 404 and "nobody" in missing.text and "<html" in missing.text
    assert client.get("/ui/rollout").status_code == 422


def test_the_cookie_is_secure_under_tls(make_console) -> None:
    client, tokens = make_console(True, "https")
    assert "; Secure" in _login(client, tokens["reader"])
