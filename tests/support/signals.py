"""Ctrl-C for CLI subprocesses in tests: a child that can receive SIGINT, and a clear failure when it does not exit.

A child inherits an ignored SIGINT (``SIG_IGN``) and a blocked one (the calling thread's signal mask) across
exec; CPython then installs no KeyboardInterrupt handler. ``deliverable_sigint()`` undoes either in the test
process before it starts the child (three Ctrl-C tests once hung on one xdist worker of a fresh-clone run
and passed everywhere else: if it happens again, ``interrupt``'s message shows the child's signal masks).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


def deliverable_sigint() -> None:
    """Let children started from this thread act on SIGINT (default disposition, not blocked)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def masks(pid: int) -> str:
    """The process's signal masks (SigBlk, SigIgn, SigCgt: bit 1 is SIGINT), for a failure message."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as error:
        return f"(no /proc/{pid}/status: {error})"
    return ", ".join(line.replace("\t", " ") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt", "State")))


def interrupt(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> int:
    """Send SIGINT and wait for the exit code; fail with the child's signal masks when it does not exit."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pid {proc.pid} did not exit {timeout:.0f} s after SIGINT: {masks(proc.pid)}") from None
