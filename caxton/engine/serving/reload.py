"""SIGHUP: re-read the engine's settings and hand them to the engine's reload hooks.

``caxton server start`` and ``caxton up`` install ``Reloader.installed`` in
their main thread. On SIGHUP the handler only starts a thread (a signal
handler must not take locks the interrupted code may hold, e.g. logging's);
that thread re-reads the settings with the same resolution as at start
(``caxton.engine.config.server_settings``: flags > CAXTON_* > caxton.yaml),
and on success calls ``Engine.reload``, which runs every hook of
``Engine.on_reload`` with the new ``ProjectConfig``. A config that cannot be
read or does not validate is logged (a warning naming the file and the
problem) and the settings in effect stay. SIGHUP never stops the engine and
never interrupts a message: serving does not wait for a reload.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from caxton.errors import CaxtonError

if TYPE_CHECKING:
    from caxton.engine.core import Engine
    from caxton.spec.project import ProjectConfig

log = logging.getLogger(__name__)


class Reloader:
    """Reloads ``engine`` from ``read`` (which raises CaxtonError on a bad config); one reload at a time."""

    def __init__(self, engine: Engine, read: Callable[[], ProjectConfig]) -> None:
        self.engine = engine
        self._read = read
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def reload(self) -> bool:
        """Re-read, validate and apply the settings; False (old settings kept) when they are bad."""
        with self._lock:
            try:
                config = self._read()
            except CaxtonError as error:
                hint = f" ({error.hint})" if error.hint else ""
                log.warning("reload refused, the settings in effect stay: %s%s", error.message, hint)
                return False
            except Exception:  # noqa: BLE001 - a reload must never take the engine down
                log.exception("reload refused, the settings in effect stay: the settings could not be read")
                return False
            failed = self.engine.reload(config)
            log.info("settings reloaded (%d hook(s), %d failed)", len(self.engine.on_reload), failed)
            return True

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        """The SIGHUP handler: reload in a thread (never in the interrupted code's frame)."""
        thread = threading.Thread(target=self.reload, name="caxton-reload", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for reloads in progress (tests, and shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)

    @contextmanager
    def installed(self) -> Iterator[Reloader]:
        """SIGHUP reloads while inside (main thread only; elsewhere the handler is left as it is)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGHUP, self.on_signal)
        try:
            yield self
        finally:
            signal.signal(signal.SIGHUP, previous)
            self.join()
