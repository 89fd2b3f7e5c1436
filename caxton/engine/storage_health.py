"""Storage faults seen by the engine (disk full, read-only), for ``/health/detailed``.

``caxton.engine.http.app`` turns a failed write (``caxton.errors.storage_fault``)
into 507 ``storage_full`` or 503 ``storage_read_only`` and notes it here.
A fault cannot be watched directly (SQLite reports a full disk only when a
write needs a page), so health is ``degraded`` while the last fault is
recent: ``HOLD_SECONDS`` after it, every new failed write renewing it. The
fault then ages out by itself once writes stop failing. Readiness is not
affected: reads and messages to stateless agents still work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from caxton.spec import health as vocabulary
from caxton.errors import CaxtonError

#: How long one storage fault keeps ``/health/detailed`` degraded.
HOLD_SECONDS = 60.0


class StorageFaults:
    """The last storage fault and when it happened. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, hold: float = HOLD_SECONDS) -> None:
        self._clock = clock
        self._hold = hold
        self._lock = threading.Lock()
        self._last: tuple[float, CaxtonError] | None = None
        self.count = 0

    def note(self, error: CaxtonError) -> None:
        with self._lock:
            self._last = (self._clock(), error)
            self.count += 1

    def health(self) -> dict[str, Any]:
        """``status`` degraded with the fault's code, message, hint and age while it is recent; else healthy."""
        with self._lock:
            last = self._last
        if last is None:
            return {"status": vocabulary.HEALTHY, "faults": self.count}
        age = self._clock() - last[0]
        if age > self._hold:
            return {"status": vocabulary.HEALTHY, "faults": self.count}
        at, error = last
        return {"status": vocabulary.DEGRADED, "faults": self.count, "code": error.code, "message": error.message,
                "hint": error.hint, "seconds_ago": round(age, 3)}
