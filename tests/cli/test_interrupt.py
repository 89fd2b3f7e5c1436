"""Ctrl-C exits 130 with one line, "interrupted": at apply's confirmation prompt, and while waiting on the engine."""

from __future__ import annotations

import os
import pty
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from caxton.client import status as status_api
from tests.cli.conftest import child_env
from tests.support.engine import EngineProcess
from tests.support.paths import EXAMPLES
from tests.support.signals import deliverable_sigint, interrupt

PROMPT = b"Only 'yes' will be accepted"


def read_until(fd: int, wanted: bytes, timeout: float = 60.0) -> bytes:
    """Read a pty until ``wanted`` shows (or fail with what came)."""
    seen, deadline = b"", time.monotonic() + timeout
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {wanted!r} within {timeout}s; the terminal showed:\n{seen.decode()}")
        try:
            seen += os.read(fd, 65536)
        except OSError as closed:  # the child exited
            raise AssertionError(f"the command ended before {wanted!r}; it showed:\n{seen.decode()}") from closed
    return seen


def wait_blocked(pid: int, timeout: float = 30.0) -> None:
    """Wait until the process sleeps in a system call (the read of the prompt's answer, the engine's reply).

    A SIGINT that lands just before that call is only acted on when the call returns (CPython checks
    signals between bytecodes and on EINTR): a race a person pressing Ctrl-C never hits, a test could."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "S":
        assert time.monotonic() < deadline, "the command never waited for its answer"
        time.sleep(0.01)


def drain(fd: int) -> bytes:
    """What is left to read on a pty whose child has exited."""
    chunks = []
    while select.select([fd], [], [], 1.0)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child's side is closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_ctrl_c_at_apply_confirmation_exits_130_with_one_line(module_engine_proc: EngineProcess,
                                                              tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES, project)
    master, terminal = pty.openpty()  # stdin and stdout on a terminal: apply asks for confirmation
    deliverable_sigint()
    proc = subprocess.Popen([sys.executable, "-m", "caxton", "apply", "agents", "--engine", module_engine_proc.url],
                            stdin=terminal, stdout=terminal, stderr=subprocess.PIPE, env=child_env(TERM="dumb"),
                            cwd=project)
    os.close(terminal)
    try:
        screen = read_until(master, PROMPT)
        assert b"Plan: 4 to create" in screen
        wait_blocked(proc.pid)
        code = interrupt(proc, 30)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        # input() writes the prompt's last character (a space) to stderr on a terminal, hence strip()
        rest = screen.split(PROMPT, 1)[1] + drain(master)
        assert (code, err.strip(), len(err.splitlines())) == (130, "interrupted", 1), (err, rest)
        assert rest.endswith(b"\r\n") and b"Traceback" not in rest, rest  # the prompt's line was ended, nothing more
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    with module_engine_proc.client() as client:
        assert status_api.state(client).agents == []  # nothing was applied


def test_ctrl_c_while_waiting_for_the_engine_exits_130_with_one_line() -> None:
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        deliverable_sigint()
        proc = subprocess.Popen([sys.executable, "-m", "caxton", "agents", "list", "--engine", url],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=child_env())
        silent.settimeout(60)
        connection, _ = silent.accept()
        with connection:
            connection.settimeout(60)
            assert connection.recv(65536).startswith(b"GET /api/v1/")  # the CLI waits for the answer now
            wait_blocked(proc.pid)
            interrupt(proc, 30)
            out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (130, b"", b"interrupted\n")
