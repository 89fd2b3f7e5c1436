"""Stopping a server subprocess the tests started (nginx, Prometheus): SIGTERM, then SIGKILL if it lingers."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate ``proc`` (its own graceful shutdown); kill it if it has not exited after ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
