"""A command the tests need (``systemd-analyze``, ``prometheus``, ``docker-compose``), installed with apt-get when absent.

CI runs as root on a Debian machine, where apt-get works; when the install is impossible the test fails with
the reason: it is never skipped. Installs run one at a time under a file lock (pytest-xdist's workers, or two
runs at once, would otherwise meet on dpkg's own lock and fail).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

LOCK = Path(tempfile.gettempdir()) / "caxton-tests-apt.lock"


def ensure_command(name: str, *, package: str) -> str:
    """The path of ``name``; installs the Debian ``package`` that ships it when it is not on PATH."""
    found = shutil.which(name)
    if found:
        return found
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return shutil.which(name) or _install(name, package)


def _install(name: str, package: str) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.fail(f"{name} is not installed and `{' '.join(command)}` could not run: {error}")
        if done.returncode != 0:
            pytest.fail(f"{name} is not installed and `{' '.join(command)}` failed (exit {done.returncode}): "
                        f"{done.stderr[-2000:]}")
    found = shutil.which(name)
    if not found:
        pytest.fail(f"apt-get installed {package} but no `{name}` is on PATH")
    return found
