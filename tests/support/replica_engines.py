"""Two or more in-process engines on one PostgreSQL store (``pg_url``), and waiting for one to follow another.

    replica_engines("a")                          # a started Engine on the test's pg_url, data dir tmp_path/a
    with following(leader, follower, "echo"):     # wait until the follower routes "echo" as the leader does

The engines follow each other through the store (``caxton.engine.replica``); ``following``
only waits for it (revisions, weights and stickiness equal), with a generous deadline.
Real engine processes on one store are in tests/support/replicas.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from caxton.spec.project import ProjectConfig

if TYPE_CHECKING:
    from caxton.engine.core import Engine


def pg_config(url: str, **extra: object) -> ProjectConfig:
    """An engine's settings on the PostgreSQL store at ``url`` (no vector memory: no model to load)."""
    return ProjectConfig.model_validate({"memory": {"enabled": False}, "store": {"url": url}, **extra})


@pytest.fixture
def replica_engines(tmp_path: Path, pg_url: str, make_engine_inproc: Callable[..., Engine]) -> Callable[..., Engine]:
    """``make(name, **settings)``: a started engine on ``pg_url`` (the same store for all), data dir
    ``tmp_path/name``; stopped (by ``make_engine_inproc``) before the database is dropped."""

    def make(name: str, **settings: object) -> Engine:
        return make_engine_inproc(pg_config(pg_url, **settings), tmp_path / name)

    return make


@contextmanager
def following(leader: Engine, follower: Engine, agent: str, *, timeout: float = 20.0) -> Iterator[None]:
    """Wait until ``follower`` routes ``agent`` as ``leader`` does (same revisions, weights, stickiness),
    then run the block (the engines keep following each other through the store meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        wanted, mine = leader.router.get(agent), follower.router.get(agent)
        if wanted is not None and mine is not None and mine.traffic() == wanted.traffic() \
                and mine.sticky == wanted.sticky:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{agent}: the follower routes {mine and mine.traffic()}, "
                                 f"the leader {wanted and wanted.traffic()}")
        time.sleep(0.01)
    yield
