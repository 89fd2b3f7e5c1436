"""Every route of the app has a role decision in ``caxton.engine.auth.ROUTE_ROLES``, and a real engine enforces it.

The walk iterates ``app.routes``: a route added without a row in the table fails
here (and ``create_app`` refuses to build). Against a real engine with a tokens
file, every route is called with no token (401 unless a probe), with a token
lacking its role (403 naming the role) and with a token holding just that role
(neither 401 nor 403); nothing answers 5xx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from caxton.engine import auth
from caxton.engine.http.app import create_app
from caxton.engine.core import Engine
from caxton.spec.project import ProjectConfig
from tests.security.auth_tokens import AuthEngine, auth_engine

#: For each role: a token that has it (and nothing implying more), and one that lacks it.
HOLDER = {"read": "reader", "message": "messenger", "memory-read": "memory-reader",
          "memory-write": "memory-writer", "deploy": "deployer", "admin": "root"}
LACKER = {"read": "messenger", "message": "reader", "memory-read": "reader",
          "memory-write": "memory-reader", "deploy": "reader", "admin": "deployer"}
PARAMS = {"name": "nobody", "apply_id": "a1", "entity_id": "1", "relation_id": "1"}
#: The web console's login, logout and assets (docs/console.md): open, so a browser can log in.
CONSOLE_OPEN = {("GET", "/ui/login"), ("POST", "/ui/login"), ("POST", "/ui/logout"), ("GET", "/ui/console.css"),
                ("GET", "/ui/console.js")}
#: Routes that never answer whole by themselves (the event stream), bounded by their own query.
BOUNDED = {"/api/v1/events/stream": "?timeout=0.2"}


def _app(tmp_path: Path) -> FastAPI:
    return create_app(Engine(ProjectConfig(), tmp_path / "data"))


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, getattr(route, "path")))
    return found


def test_every_route_of_the_app_has_a_role_decision(tmp_path: Path) -> None:
    routes = _routes(_app(tmp_path))
    assert len(routes) >= 45
    missing = [route for route in routes if route not in auth.ROUTE_ROLES]
    assert missing == [], f"routes without a role in caxton.engine.auth.ROUTE_ROLES: {missing}"
    stale = set(auth.ROUTE_ROLES) - set(routes)
    assert stale == set(), f"ROUTE_ROLES rows for routes that do not exist: {stale}"
    open_routes = {route for route in routes if auth.ROUTE_ROLES[route] == auth.OPEN}
    assert open_routes == {("GET", "/api/v1/health"), ("GET", "/api/v1/ready"), ("GET", "/healthz"), ("GET", "/readyz"),
                           *CONSOLE_OPEN}


def test_a_route_without_a_decision_is_refused_at_build_time(tmp_path: Path) -> None:
    app = _app(tmp_path)

    @app.get("/api/v1/secret-new-route")
    def secret() -> dict[str, str]:
        return {"root password": "hunter2"}

    with pytest.raises(RuntimeError, match="GET /api/v1/secret-new-route has no entry"):
        auth.Policy.compile(app.routes, metrics_open=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEngine]:
    with auth_engine(tmp_path_factory.mktemp("routes")) as engine:
        yield engine


def _url(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], template) + BOUNDED.get(template, "")


def _body(method: str) -> dict[str, object]:
    return {"json": {}} if method in ("POST", "PUT", "PATCH") else {}


@pytest.mark.parametrize(("method", "template"), sorted(auth.ROUTE_ROLES))
def test_each_route_needs_exactly_its_role(served: AuthEngine, method: str, template: str) -> None:
    role = auth.ROUTE_ROLES[(method, template)]
    url = _url(template)
    anonymous = served.call(method, url, **_body(method))
    if role == auth.OPEN:
        # An empty login (no token pasted) is answered by the login page with 401 (tests/ui).
        assert anonymous.status_code < 400 or (method, template) == ("POST", "/ui/login"), anonymous.text
        return
    if method == "GET" and template.startswith("/ui"):  # a console page: to the login page, with nothing of it
        assert anonymous.status_code == 303, anonymous.text
        assert anonymous.headers["location"].startswith("/ui/login?next=") and anonymous.content == b""
    else:
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert set(anonymous.json()) == {"error"}  # nothing of the route's data
    needed = auth.READ if role == auth.METRICS else role  # metrics_auth defaults to "token"
    denied = served.call(method, url, LACKER[needed], **_body(method))
    assert denied.status_code == 403, denied.text
    assert f"needs the {needed!r} role" in denied.json()["error"]["message"]
    allowed = served.call(method, url, HOLDER[needed], **_body(method))
    assert allowed.status_code not in (401, 403), allowed.text
    assert allowed.status_code < 500, allowed.text
    by_admin = served.call(method, url, "root", **_body(method))
    assert by_admin.status_code not in (401, 403) and by_admin.status_code < 500, by_admin.text


def test_force_releasing_the_lock_needs_admin(served: AuthEngine) -> None:
    denied = served.call("DELETE", "/api/v1/lock?force=true", "deployer")
    assert denied.status_code == 403 and "'admin' role" in denied.json()["error"]["message"]
    assert served.call("DELETE", "/api/v1/lock?force=true", "root").status_code == 200
    assert served.call("DELETE", "/api/v1/lock", "deployer").status_code == 200  # releasing its own: deploy


def test_an_unknown_path_needs_a_token_then_answers_404(served: AuthEngine) -> None:
    assert served.call("GET", "/api/v1/nothing-here").status_code == 401
    assert served.call("GET", "/api/v1/nothing-here", "messenger").status_code == 404
