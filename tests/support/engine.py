"""A real engine for tests: ``caxton server start`` in a subprocess on 127.0.0.1.

    with running_engine(tmp_path) as engine:      # free port, tmp data dir
        status.health(engine.client())
        engine.url, engine.data_dir, engine.token
        engine.kill()                              # kill -9
        engine.start()                             # same port and data dir again

or the fixtures (registered for the whole suite by tests/conftest.py): ``engine_proc`` (default
configuration), ``engine_proc_no_memory`` (vector memory off) and ``module_engine_proc`` (one per module).
A module that needs a differently configured process keeps its own fixture named for what it is
(``llm_engine``, ``small_tmpfs_engine``, ...). In-process engines are in tests/support/engine_inproc.py.
The server's stdout and stderr go to files in the data dir's parent
(``engine.log_text()`` reads them) so a failing test can show them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from caxton.client.transport import EngineClient

from tests.support.paths import free_port, python_path

#: Generous: a loaded CI machine running the suite on several workers can take tens of seconds to start one.
START_TIMEOUT = 90.0


class EngineProcess:
    """One engine subprocess; restartable on the same port and data directory."""

    def __init__(
        self, data_dir: Path, *, port: int | None = None, token: str | None = None,
        config: Path | None = None, env: dict[str, str] | None = None, args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.token = token
        self.config = config
        self.extra_env = env or {}
        self.extra_args = args or []
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"engine-{self.port}.log"
        self.starts = 0

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "caxton", "server", "start", "--host", "127.0.0.1",
               "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
        env["PYTHONPATH"] = python_path(env)
        if self.token:
            env["CAXTON_API_TOKEN"] = self.token
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = START_TIMEOUT) -> EngineProcess:
        """Start the server and wait until ``/api/v1/ready`` answers 200."""
        self.launch()
        self._wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Start the server without waiting for it (``wait_ready`` then): several start at once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.environment(),
                                     cwd=self.data_dir.parent)
        log.close()
        self.starts += 1

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the launched server is ready (subclasses change how: ``_wait_ready``)."""
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode} before ready:\n{self.log_text()}")
            try:
                if httpx.get(self.url + "/api/v1/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"engine not ready after {timeout}s:\n{self.log_text()}")

    def client(self, **kwargs: Any) -> EngineClient:
        kwargs.setdefault("token", self.token)
        return EngineClient(self.url, **kwargs)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """kill -9 (no cleanup at all), like a crash."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10.0)
        self.proc = None
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def running_engine(tmp_path: Path, **kwargs: Any) -> Iterator[EngineProcess]:
    """An engine on a free port with ``tmp_path / "data"`` as data dir, stopped afterwards."""
    engine = EngineProcess(tmp_path / "data", **kwargs)
    engine.start()
    try:
        yield engine
    finally:
        if engine.running:
            engine.terminate()


def no_memory(directory: Path) -> Path:
    """A caxton.yaml without vector memory (most process tests need none; its model costs CPU)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "caxton.yaml"
    path.write_text("memory:\n  enabled: false\n")
    return path


@pytest.fixture
def engine_proc(tmp_path: Path) -> Iterator[EngineProcess]:
    """A real engine process with the default configuration, on ``tmp_path / "data"``."""
    with running_engine(tmp_path) as process:
        yield process


@pytest.fixture
def engine_proc_no_memory(tmp_path: Path) -> Iterator[EngineProcess]:
    """A real engine process with vector memory off (``tmp_path / "caxton.yaml"``): starts faster."""
    with running_engine(tmp_path, config=no_memory(tmp_path)) as process:
        yield process


@pytest.fixture(scope="module")
def module_engine_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One real engine process with the default configuration shared by the tests of a module."""
    with running_engine(tmp_path_factory.mktemp("engine")) as process:
        yield process
