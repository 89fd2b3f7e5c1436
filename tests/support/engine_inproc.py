"""In-process engines for tests: ``Engine`` objects started in this process (no server, no HTTP).

    engine_inproc                  a started engine with the default configuration on ``tmp_path / "data"``
    make_engine_inproc(config, data_dir)   more of them (other configurations, a second data dir)

All are stopped at teardown. A real server subprocess is ``engine_proc`` (tests/support/engine.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from caxton.spec.project import ProjectConfig

if TYPE_CHECKING:  # the engine's stack loads when a test asks for one, not for every test session
    from caxton.engine.core import Engine


@pytest.fixture
def make_engine_inproc(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Build started in-process engines over ``tmp_path/data``; stopped at teardown."""
    from caxton.engine.core import Engine

    engines: list[Engine] = []

    def make(config: ProjectConfig | None = None, data_dir: Path | None = None) -> Engine:
        engine = Engine(config or ProjectConfig(), data_dir or tmp_path / "data")
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in reversed(engines):  # the last one started first: it may follow the others
        if engine.started:
            engine.stop()


@pytest.fixture
def engine_inproc(make_engine_inproc: Callable[..., Engine]) -> Engine:
    return make_engine_inproc()
