"""The clock the time-driven loops read: rollouts (``caxton.engine.rollouts``) and the reconcile loop.

``SYSTEM`` is the real clock (``time.monotonic``, ``time.time``, ``Event.wait``) and what production
uses; a test passes another ``Clock`` (e.g. ``tests/support/clock.ManualClock``) to run the same code
in simulated time. A clock answers three things: a monotonic reading for intervals and deadlines, the
wall time for timestamps people read, and a wait on an event that ends when the event is set or when
``timeout`` seconds of this clock have passed. Imports nothing of caxton: both stacks use it.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (timestamps shown to people)."""
        ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait until ``event`` is set (True) or ``timeout`` seconds of this clock passed (False)."""
        ...


class SystemClock:
    """The real clock (the functions of ``time`` themselves: no extra call on the message path)."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)


SYSTEM: Clock = SystemClock()
