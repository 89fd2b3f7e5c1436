"""Two or more in-process engines on one PostgreSQL store (``pg_url``): building them, and a stand-in follower.

    replica_engines("a")                          # a started Engine on the test's pg_url, data dir tmp_path/a
    with FollowRoute(leader, follower, "echo"):   # the follower's route of "echo" copies the leader's
        ...

``FollowRoute`` copies the leader's route (revisions, weights, stickiness) to the
follower every few milliseconds, starting on the follower the stored revisions it
lacks: what a replica following the leader's rollouts does, reduced to what the
tests of shared rollout data need (the analysis samples, the conversation pins
and history). It stops the runtimes it started when it exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Self

import pytest

from caxton.spec.project import ProjectConfig

if TYPE_CHECKING:
    from caxton.engine.core import Engine
    from caxton.engine.serving.runtime import ServingRuntime


def pg_config(url: str, **extra: object) -> ProjectConfig:
    """An engine's settings on the PostgreSQL store at ``url`` (no vector memory: no model to load)."""
    return ProjectConfig.model_validate({"memory": {"enabled": False}, "store": {"url": url}, **extra})


@pytest.fixture
def replica_engines(tmp_path: Path, pg_url: str) -> Iterator[Callable[..., Engine]]:
    """``make(name, **settings)``: a started engine on ``pg_url`` (the same store for all), data dir
    ``tmp_path/name``; stopped before the database is dropped."""
    from caxton.engine.core import Engine

    made: list[Engine] = []

    def make(name: str, **settings: object) -> Engine:
        engine = Engine(pg_config(pg_url, **settings), tmp_path / name)
        engine.start()
        made.append(engine)
        return engine

    yield make
    for engine in reversed(made):
        if engine.started:
            engine.stop()


class FollowRoute:
    """Keeps ``follower``'s route of ``agent`` the same as ``leader``'s (a background thread)."""

    def __init__(self, leader: Engine, follower: Engine, agent: str, *, every: float = 0.005) -> None:
        self.leader = leader
        self.follower = follower
        self.agent = agent
        self.every = every
        self._started: dict[int, ServingRuntime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow-route", daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self) -> Self:
        self.sync()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        route = self.follower.router.get(self.agent)
        serving = {s.revision for s in route.servings()} if route is not None else set()
        for revision, runtime in self._started.items():
            if revision not in serving:
                runtime.drain(1.0)
                runtime.stop()
        assert not self.errors, self.errors

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sync()
            except BaseException as error:  # noqa: BLE001 - reported at exit
                self.errors.append(error)
                return

    def sync(self) -> None:
        from caxton.engine.serving.router import Backend, Route

        wanted = self.leader.router.get(self.agent)
        mine = self.follower.router.get(self.agent)
        if wanted is None or (mine is not None and mine.traffic() == wanted.traffic() and
                              mine.sticky == wanted.sticky):
            return
        with self.follower.ops.lock:
            backends = tuple(Backend(self._serving(b.serving.revision), b.weight) for b in wanted.backends)
            self.follower.router.set(Route(self.agent, backends, sticky=wanted.sticky))

    def _serving(self, revision: int) -> ServingRuntime:
        route = self.follower.router.get(self.agent)
        found = route.serving(revision) if route is not None else None
        if found is None:
            found = self._started.get(revision)
        if found is None:
            found = self._started[revision] = self.follower.ops.start_revision(self.agent, revision)
        return found
