"""What the engines of one PostgreSQL store share so rollouts stay right whichever replica answers.

``start`` is called once by the engine after opening its history connection:
on PostgreSQL it starts this engine's rollout samples
(``caxton.engine.rollouts.samples.Shared``: flushed to the store about once a
second, and the other engines' read back by the analysis) and hands them to
the ``WindowBook``. On SQLite (one engine per store) it does nothing and
returns None: nothing is flushed, the windows are the engine's own.
"""

from __future__ import annotations

from caxton.engine.rollouts.samples import Shared
from caxton.engine.rollouts.window import WindowBook
from caxton.engine.serving.router import Router
from caxton.engine.state.history_db import HistoryDB


class Sharing:
    """The parts of one engine that share with the others; ``stop`` before closing the history connection."""

    def __init__(self, samples: Shared, windows: WindowBook) -> None:
        self.samples = samples
        self.windows = windows

    def stop(self) -> None:
        self.windows.shared = None
        self.samples.stop()


def start(history: HistoryDB, engine_id: str, router: Router, windows: WindowBook) -> Sharing | None:
    """Share this engine's rollout samples when its store is PostgreSQL (None on SQLite)."""
    if history.dialect != "postgres":
        return None
    samples = Shared(history, engine_id, router.clock.time)
    samples.start()
    windows.shared = samples
    return Sharing(samples, windows)
