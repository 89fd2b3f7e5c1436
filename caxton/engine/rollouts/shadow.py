"""The shadow (parallel) strategy's mirror: a copy of each message to the candidate.

``ShadowMirror`` satisfies ``caxton.engine.serving.router.Mirror``. The engine's
message path offers it every message the stable revision answered; a single
worker thread sends the copy to the candidate revision, records the outcome
and latency in the candidate's window, compares the candidate's reply with the
stable one's (canonical JSON) and discards it. The queue is bounded: when the
candidate cannot keep up, copies are dropped and counted, never delaying
the stable revision's replies. Created and closed by the rollout controller.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

from caxton.engine.rollouts.window import Window
from caxton.engine.serving.runtime import ServingRuntime

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000


class ShadowMirror:
    """Sends copies of messages to ``serving`` and counts how its replies differ."""

    def __init__(self, serving: ServingRuntime, window: Window) -> None:
        self.serving = serving
        self.window = window
        self.dropped = 0
        self._queue: queue.Queue[tuple[dict[str, Any], Any] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name=f"shadow-{serving.agent_id}", daemon=True)
        self._thread.start()

    def offer(self, envelope: dict[str, Any], reply: Any) -> None:
        try:
            self._queue.put_nowait((envelope, reply))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Stop the worker (queued copies still in the queue are discarded)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._copy(*item)
            except Exception:
                log.exception("shadow copy to %s failed", self.serving.agent_id)

    def _copy(self, envelope: dict[str, Any], reply: Any) -> None:
        if not self.serving.acquire():
            return
        began = time.perf_counter()
        try:
            got = self.serving.handle({**envelope, "revision": self.serving.revision})
            ok = True
        except Exception:  # noqa: BLE001 - the candidate's failure is a measurement
            got, ok = None, False
        finally:
            self.serving.release()
        self.window.record(time.perf_counter() - began, ok)
        self.window.compare(ok and _canonical(got) == _canonical(reply))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
