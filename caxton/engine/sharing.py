"""What the engines of one PostgreSQL store share so rollouts and conversations stay right on any of them.

``start`` is called once by the engine after opening its history connection.
On PostgreSQL it:

- starts this engine's rollout samples (``caxton.engine.rollouts.samples.Shared``:
  flushed to the store every half second, and the other engines' read back by
  the analysis) and hands them to the ``WindowBook``;
- gives the router the store's conversation pins (``Router.claim``): while a
  rollout keeps conversations sticky, a conversation this engine has not seen
  takes the revision another engine pinned it to, or is pinned in the store to
  the revision picked here before its message is handled.

Conversation history needs nothing here: ``DurableConversationStore`` reads a
conversation's turns from the store at each message when the store is
PostgreSQL (``caxton.engine.serving.conversations``). On SQLite (one engine
per store) ``start`` does nothing and returns None.
"""

from __future__ import annotations

import logging

from caxton.engine.rollouts.samples import Shared
from caxton.engine.rollouts.window import WindowBook
from caxton.engine.serving.router import Router
from caxton.engine.state import rollouts as records
from caxton.engine.state.history_db import HistoryDB

log = logging.getLogger(__name__)


class Pins:
    """``Router.claim`` on the store: one statement per conversation new to this engine during a sticky step."""

    def __init__(self, db: HistoryDB) -> None:
        self.db = db
        self._failing = False

    def claim(self, agent_id: str, conversation_id: str, revision: int) -> int:
        try:
            with self.db.autocommit() as conn:
                found = records.claim_pin(conn, agent_id, conversation_id, revision)
        except Exception as error:  # noqa: BLE001 - the store is unreachable: placed by its id's hash, as on one engine
            if not self._failing:
                log.warning("could not read or write conversation pins in the store (placing new conversations by "
                            "their id's hash meanwhile): %s", error)
            self._failing = True
            return revision
        self._failing = False
        return found


class Sharing:
    """The parts of one engine that share with the others; ``stop`` before closing the history connection."""

    def __init__(self, samples: Shared, windows: WindowBook) -> None:
        self.samples = samples
        self.windows = windows

    def stop(self) -> None:
        self.windows.shared = None
        self.samples.stop()


def start(history: HistoryDB, engine_id: str, router: Router, windows: WindowBook) -> Sharing | None:
    """Share this engine's rollout samples and conversation pins when its store is PostgreSQL (None on SQLite)."""
    if history.dialect != "postgres":
        return None
    samples = Shared(history, engine_id, router.clock.time)
    samples.start()
    windows.shared = samples
    router.claim = Pins(history).claim
    return Sharing(samples, windows)
