"""One engine per data directory: an exclusive ``flock`` on ``<data dir>/engine.lock``.

``Engine.start`` takes the lock before it opens the store and ``Engine.stop``
releases it, so ``caxton server start``, ``caxton up`` and in-process engines
all refuse a data directory another engine holds. The kernel releases a
``flock`` when the process that holds it dies, however it dies: a lock left
by ``kill -9`` never blocks a restart, and the file's content (pid, host,
start time of the holder) only words the refusal; it never decides it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from caxton.errors import CaxtonError

LOCK_NAME = "engine.lock"


class DataDirHeld(CaxtonError):
    code = "data_dir_held"


class DataDirLock:
    """The held lock of one data directory; ``release`` (idempotent) lets the next engine in."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor releases the flock


def acquire(data_dir: Path) -> DataDirLock:
    """Hold ``data_dir`` for this engine, or raise DataDirHeld naming the engine that holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(fd)
        os.close(fd)
        raise DataDirHeld(
            f"data directory {data_dir} is held by {holder}",
            hint="one engine per data directory: stop that engine first (SIGTERM), "
                 "or give this one another --data-dir (CAXTON_DATA_DIR)",
        ) from None
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": started}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record + b"\n", 0)
    return DataDirLock(path, fd)


def _holder(fd: int) -> str:
    """'pid N on host H since T' from the lock file (written by the holder just after it locked)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {int(record['pid'])} on host {record['host']} since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another engine (it is still starting: its pid is not written yet)"
