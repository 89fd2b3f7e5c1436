"""A real engine for the client's tests, served in this process by the engine's own start-up.

``served_engine`` starts an ``Engine`` (vector memory off: fast) behind ``caxton.engine.server.embedded``
(the start-up ``caxton up`` uses: sockets, SIGHUP, uvicorn in a thread) on a free port of 127.0.0.1,
one per test module; ``client`` is an ``EngineClient`` of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from caxton.client.transport import EngineClient
from caxton.spec.project import ProjectConfig


@dataclass(frozen=True)
class Served:
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def served_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from caxton.engine import server

    config = ProjectConfig.model_validate({"server": {"host": "127.0.0.1", "port": 0}, "memory": {"enabled": False}})
    engine = server.Engine(config, tmp_path_factory.mktemp("engine") / "data")
    with server.embedded(engine, host="127.0.0.1", port=0) as serving:
        yield Served(serving.url, engine.data_dir)
    assert not engine.started  # the block's end stopped it


@pytest.fixture
def client(served_engine: Served) -> Iterator[EngineClient]:
    with EngineClient(served_engine.url, timeout=30.0) as opened:
        yield opened
