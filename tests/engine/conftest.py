"""Fixtures of the engine tests: in-process engines, and the real ASGI app over one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from caxton.engine.api import create_app
from caxton.engine.core import Engine
from caxton.spec.project import ProjectConfig


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Build started in-process engines over ``tmp_path/data``; stopped at teardown."""
    engines: list[Engine] = []

    def make(config: ProjectConfig | None = None, data_dir: Path | None = None) -> Engine:
        engine = Engine(config or ProjectConfig(), data_dir or tmp_path / "data")
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        if engine.started:
            engine.stop()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


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
