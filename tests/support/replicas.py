"""Several real engine replicas for tests: N ``caxton server start`` subprocesses on one PostgreSQL store.

    with running_replicas(tmp_path, pg_url, count=3) as replicas:   # free ports, data dirs data-0, data-1, ...
        replicas[0].url, replicas.urls, replicas.token               # one token for all
        replicas.kill(1)                                              # kill -9 one
        replicas.restart(1)                                           # the same port and data dir again
        replicas.terminate(2)                                         # SIGTERM, wait, the exit code

Each replica is a ``tests.support.engine.EngineProcess`` (its own port and data directory) sharing one
``caxton.yaml`` in ``tmp_path`` whose ``store.url`` is the database; ``config`` adds YAML to it (other
sections, e.g. ``server:\\n  drain_delay: 1s``). Memory is off (its model costs CPU). Replicas started
together start at once (then each is waited for) and stop together at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.engine import EngineProcess

TOKEN = "replica-test-token"


class Replicas:
    """N engine processes on one store; indexable (``replicas[0]``) and iterable."""

    def __init__(self, directory: Path, store_url: str, *, count: int, config: str = "", token: str = TOKEN,
                 env: dict[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "caxton.yaml"
        self.config.write_text(f"store:\n  url: {store_url}\nmemory:\n  enabled: false\n{config}")
        self.token = token
        self.engines = [EngineProcess(directory / f"data-{n}", token=token, config=self.config, env=env) for n in range(count)]

    def __getitem__(self, index: int) -> EngineProcess:
        return self.engines[index]

    def __iter__(self) -> Iterator[EngineProcess]:
        return iter(self.engines)

    def __len__(self) -> int:
        return len(self.engines)

    @property
    def urls(self) -> list[str]:
        return [engine.url for engine in self.engines]

    @property
    def addresses(self) -> list[str]:
        """``127.0.0.1:PORT`` of each replica (an nginx upstream's servers)."""
        return [f"127.0.0.1:{engine.port}" for engine in self.engines]

    def start(self, *indexes: int) -> None:
        """Start the given replicas (all when none is given) at once and wait until each is ready."""
        chosen = [self.engines[index] for index in indexes or range(len(self.engines))]
        for engine in chosen:
            engine.launch()
        for engine in chosen:
            engine.wait_ready()

    def kill(self, index: int) -> int:
        """kill -9 one replica; its exit code (-9)."""
        return self.engines[index].kill()

    def terminate(self, index: int) -> int:
        """SIGTERM one replica and wait for its exit code."""
        return self.engines[index].terminate()

    def restart(self, index: int) -> EngineProcess:
        """Stop one replica (SIGTERM) when it runs and start it again on the same port and data directory."""
        engine = self.engines[index]
        if engine.running:
            engine.terminate()
        return engine.start()

    def stop(self) -> None:
        for engine in self.engines:
            if engine.running:
                engine.terminate()

    def logs(self) -> str:
        """Every replica's log, each under its URL (for a failing test's message)."""
        return "\n".join(f"--- {engine.url}\n{engine.log_text()[-4000:]}" for engine in self.engines)


@contextmanager
def running_replicas(directory: Path, store_url: str, *, count: int = 3, config: str = "",
                     start: bool = True, env: dict[str, str] | None = None) -> Iterator[Replicas]:
    """``count`` replicas on ``store_url`` (started unless ``start`` is False; ``env`` added to each one's
    environment), stopped afterwards."""
    replicas = Replicas(directory, store_url, count=count, config=config, env=env)
    try:
        if start:
            replicas.start()
        yield replicas
    finally:
        replicas.stop()
