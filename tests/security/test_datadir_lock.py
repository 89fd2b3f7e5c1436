"""One engine per data directory: a second engine is refused (exit 1, naming the holder); kill -9 never blocks."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from caxton.client import status as status_api
from caxton.engine import datadir
from caxton.engine.core import Engine
from caxton.spec.project import ProjectConfig
from tests.support.engine import EngineProcess, no_memory, running_engine
from tests.support.paths import EXAMPLES, free_port, python_path

HELD = re.compile(r"^error: data directory (?P<dir>\S+) is held by pid (?P<pid>\d+) on host (?P<host>\S+) "
                  r"since (?P<since>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$", re.MULTILINE)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env["PYTHONPATH"] = python_path(env)
    return env


def _refused(command: list[str], cwd: Path, holder: EngineProcess) -> str:
    done = subprocess.run(command, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    found = HELD.search(done.stderr)
    assert found, done.stderr
    assert holder.proc is not None
    assert Path(found["dir"]) == holder.data_dir
    assert (int(found["pid"]), found["host"]) == (holder.proc.pid, socket.gethostname())
    assert "hint: one engine per data directory: stop that engine first" in done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_a_second_server_or_up_on_a_held_data_dir_exits_1_naming_the_holder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "summarizer.toml").write_bytes((EXAMPLES / "agents" / "summarizer.toml").read_bytes())
    (project / "caxton.yaml").write_text("memory:\n  enabled: false\n")
    with running_engine(tmp_path, config=no_memory(tmp_path)) as engine, engine.client() as client:
        second = [sys.executable, "-m", "caxton", "server", "start", "--host", "127.0.0.1",
                  "--port", str(free_port()), "--data-dir", str(engine.data_dir)]
        _refused(second, tmp_path, engine)
        up = [sys.executable, "-m", "caxton", "up", "--port", str(free_port()), "--data-dir", str(engine.data_dir)]
        assert "caxton engine API at" not in _refused(up, project, engine)
        assert status_api.health(client).status == "healthy"  # the holder is untouched


def test_a_restart_after_kill_9_takes_the_data_dir_at_once(tmp_path: Path) -> None:
    with running_engine(tmp_path, config=no_memory(tmp_path)) as engine:
        first = engine.proc.pid if engine.proc else 0
        assert engine.kill() == -9
        assert str(first) in (engine.data_dir / datadir.LOCK_NAME).read_text()  # the stale record is left...
        engine.start()  # ...and does not matter: the kernel released the lock with the process
        with engine.client() as client:
            assert status_api.health(client).status == "healthy"
        assert engine.proc is not None
        assert f'"pid": {engine.proc.pid}' in (engine.data_dir / datadir.LOCK_NAME).read_text()


def test_in_process_engines_share_the_rule_and_stop_lets_the_next_in(tmp_path: Path) -> None:
    config = ProjectConfig.model_validate({"memory": {"enabled": False}})
    first = Engine(config, tmp_path / "data")
    first.start()
    try:
        second = Engine(config, tmp_path / "data")
        with pytest.raises(datadir.DataDirHeld, match=rf"is held by pid {os.getpid()} on host "):
            second.start()
        assert not second.started
    finally:
        first.stop()
    second.start()  # released by stop()
    second.stop()


def test_a_lock_file_being_written_is_still_a_refusal(tmp_path: Path) -> None:
    held = datadir.acquire(tmp_path)
    try:
        os.truncate(held.path, 0)  # as if the holder had locked but not yet written its record
        with pytest.raises(datadir.DataDirHeld, match="held by another engine"):
            datadir.acquire(tmp_path)
    finally:
        held.release()
    datadir.acquire(tmp_path).release()
