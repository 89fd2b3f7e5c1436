"""Fixtures for the reconcile tests: a loop running in a thread (over ``desired_repo`` and ``engine_proc``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from caxton.client import status as status_api
from caxton.clock import SYSTEM, Clock
from caxton.reconcile.loop import Loop, Settings
from caxton.reconcile.passes import Options, PassOutcome, Target
from caxton.reconcile.sources import Source
from tests.support.engine import EngineProcess
from tests.support.poll import wait_for  # noqa: F401  (the reconcile tests import it from here)

#: Short timings so every watch test ends in seconds.
FAST = Settings(interval=1.0, backoff_base=0.2, backoff_cap=1.0, jitter=0.1, options=Options(apply_timeout=30.0))


@contextmanager
def running_loop(source: Source, targets: list[Target], settings: Settings = FAST, *, clock: Clock = SYSTEM,
                 on_pass: Callable[[PassOutcome], None] | None = None) -> Iterator[Loop]:
    """A watch loop in a thread (timed by ``clock``); stopped (and checked to have stopped) afterwards."""
    loop = Loop(source, targets, settings, clock=clock, on_pass=on_pass)
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
