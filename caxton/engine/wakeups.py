"""Coroutines on event loops waiting for the next change that a thread makes (``ApplyRunner.follow``'s long-polls).

A waiter takes a ``ticket`` (a future) before looking at the state, so no change is missed;
``notify``, from any thread, resolves every ticket on its own loop. A long-poll waiting on a
ticket holds no worker thread. Used by ``caxton.engine.applies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Wakeups:
    """Futures of coroutines waiting for the next change of any apply; ``notify`` may run in any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def ticket(self) -> asyncio.Future[None]:
        """A future resolved at the next ``notify`` (take it before looking at the state: no change is missed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiting.append((loop, future))
        return future

    def discard(self, future: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiting = [pair for pair in self._waiting if pair[1] is not future]

    def notify(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
