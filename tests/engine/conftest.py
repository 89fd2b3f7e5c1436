"""Fixtures of the engine tests: the real ASGI app over an in-process engine (the engines themselves:
tests/support/engine_inproc.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from caxton.engine.http.app import create_app
from caxton.engine.core import Engine
from caxton.spec.project import ProjectConfig


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A TestClient over the real app (lifespan runs: the engine starts and stops with it)."""
    clients: list[TestClient] = []

    def make(config: ProjectConfig | None = None) -> TestClient:
        engine = Engine(config or ProjectConfig(), tmp_path / "api-data")
        # base_url: the engine answers only to its own Host names (DNS rebinding), not "testserver".
        client = TestClient(create_app(engine), raise_server_exceptions=False, base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., TestClient]) -> TestClient:
    return make_api()
