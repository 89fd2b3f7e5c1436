"""Simulated time for the time-driven loops (rollouts, reconcile): a ``caxton.clock.Clock`` that a test moves.

    clock = ManualClock()
    engine = Engine(config, data_dir, clock=clock)      # or Loop(source, targets, settings, clock=clock)
    clock.advance(30.0)                                 # 30 s pass at once: timers due by then fire
    clock.settle()                                      # until the loop waits again (it did what was due)

Time stands still until ``advance``. ``wait(event, timeout)`` returns True as soon as the event is set
(polled every few real milliseconds) and False once ``advance`` has moved the clock past its deadline.
"""

from __future__ import annotations

import threading
import time

#: Real seconds between two looks at a waited event (an Event cannot wake the clock's condition).
POLL = 0.002


class ManualClock:
    def __init__(self, start: float = 10_000.0, epoch: float = 1_800_000_000.0) -> None:
        self._now = start
        self._epoch = epoch - start
        self._changed = threading.Condition()
        #: Threads in ``wait``, with the clock reading they last looked at.
        self._waiting: dict[int, float] = {}

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self._now

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        me = threading.get_ident()
        with self._changed:
            deadline = None if timeout is None else self._now + timeout
            try:
                while not event.is_set():
                    if deadline is not None and self._now >= deadline:
                        return False
                    self._waiting[me] = self._now
                    self._changed.notify_all()
                    self._changed.wait(POLL)
                return True
            finally:
                self._waiting.pop(me, None)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward; every wait whose deadline passed returns."""
        with self._changed:
            self._now += seconds
            self._changed.notify_all()

    def settle(self, waiters: int = 1, timeout: float = 30.0) -> None:
        """Block (real time) until ``waiters`` threads wait at the current reading: what was due has run."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for seen in self._waiting.values() if seen == self._now) < waiters:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{waiters} waiter(s) expected at t={self._now}; waiting: {self._waiting}")
                self._changed.wait(POLL)
