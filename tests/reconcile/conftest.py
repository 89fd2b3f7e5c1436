"""Fixtures for the reconcile tests: a loop running in a thread (over ``desired_repo`` and ``engine_proc``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from caxton.client import status as status_api
from caxton.reconcile.loop import Loop, Settings
from caxton.reconcile.passes import Options, Target
from caxton.reconcile.sources import Source
from tests.support.engine import EngineProcess

#: Short timings so every watch test ends in seconds.
FAST = Settings(interval=1.0, backoff_base=0.2, backoff_cap=1.0, jitter=0.1, options=Options(apply_timeout=30.0))


def wait_for(check: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    """Poll ``check`` until it returns a truthy value (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as error:  # noqa: BLE001 - e.g. the engine is restarting
            last_error = error
        else:
            if value:
                return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@contextmanager
def running_loop(source: Source, targets: list[Target], settings: Settings = FAST) -> Iterator[Loop]:
    """A watch loop in a thread; stopped (and checked to have stopped) afterwards."""
    loop = Loop(source, targets, settings)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), name="test-reconcile-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        stop.set()
        loop.poke("stop")
        thread.join(timeout=20.0)
        source.close()
        assert not thread.is_alive(), "the loop did not stop"


def revisions(engine: EngineProcess) -> dict[str, tuple[str, int, str]]:
    with engine.client() as client:
        return {a.id: (a.state, a.revision, a.version) for a in status_api.state(client).agents}
