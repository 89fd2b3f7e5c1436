"""``caxton up`` and ``caxton server start`` resolve their settings one way:
flags > CAXTON_* environment > caxton.yaml > defaults; ``up`` refuses a folder without agents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from caxton.engine import config
from tests.conftest import CliResult
from tests.support.paths import EXAMPLES, REPO_ROOT, free_port, python_path


def _project(root: Path, settings: str) -> Path:
    """A desired-state folder with one agent and a caxton.yaml holding ``settings`` (memory off: fast start)."""
    (root / "agents").mkdir(parents=True)
    (root / "agents" / "summarizer.toml").write_bytes((EXAMPLES / "agents" / "summarizer.toml").read_bytes())
    (root / "caxton.yaml").write_text(settings + "memory:\n  enabled: false\n")
    return root


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env["PYTHONPATH"] = python_path(env)
    env.update(extra)
    return env


def _announced(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> str:
    """Start ``command``, return the line where it says where its API is, then SIGTERM it (exit 0)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and proc.poll() is None:
            line = next((x for x in log.read_text().splitlines() if x.startswith("caxton engine API at ")), None)
            if line:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no API line (exit {proc.poll()}):\n{log.read_text()}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30.0) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10.0)
    return line


def _up(*args: str) -> list[str]:
    return [sys.executable, "-m", "caxton", "up", "--poll-interval", "100ms", *args]


# --- the one resolution both commands use --------------------------------------------------------
@pytest.mark.parametrize(
    ("file", "env", "flags", "expected"),
    [
        ("", {}, {}, ("127.0.0.1", 8080, ".caxton")),
        ("server:\n  port: 9001\n  host: 127.0.0.2\n  data_dir: state\n", {}, {}, ("127.0.0.2", 9001, "state")),
        ("server:\n  port: 9001\n  data_dir: state\n", {"CAXTON_PORT": "9002", "CAXTON_DATA_DIR": "envdir"}, {},
         ("127.0.0.1", 9002, "envdir")),
        ("server:\n  port: 9001\n", {"CAXTON_PORT": "9002", "CAXTON_HOST": "127.0.0.3"},
         {"port": 9003, "data_dir": Path("flagdir")}, ("127.0.0.3", 9003, "flagdir")),
    ],
    ids=["defaults", "file", "env-over-file", "flags-over-env"],
)
def test_flags_then_environment_then_file_then_defaults(
    tmp_path: Path, file: str, env: dict[str, str], flags: dict[str, object], expected: tuple[str, int, str],
) -> None:
    (tmp_path / "caxton.yaml").write_text(file)
    settings = config.server_settings(env=env, cwd=tmp_path, **flags)  # type: ignore[arg-type]
    host, port, data_dir = expected
    assert (settings.config.server.host, settings.config.server.port) == (host, port)
    assert settings.data_dir == tmp_path / data_dir


# --- caxton up -----------------------------------------------------------------------------------
def test_up_listens_on_caxton_yaml_server_port(tmp_path: Path) -> None:
    port = free_port()
    root = _project(tmp_path / "repo", f"server:\n  port: {port}\n")
    line = _announced(_up(), root, _environment(), tmp_path / "up.log")
    assert line.startswith(f"caxton engine API at http://127.0.0.1:{port}/api/v1 (data dir {root / '.caxton'})")


def test_up_caxton_port_beats_the_file_and_port_beats_both(tmp_path: Path) -> None:
    in_file, in_env, on_flag = free_port(), free_port(), free_port()
    root = _project(tmp_path / "repo", f"server:\n  port: {in_file}\n")
    env = _environment(CAXTON_PORT=str(in_env), CAXTON_DATA_DIR=str(tmp_path / "env-data"))
    line = _announced(_up(), root, env, tmp_path / "env.log")
    assert line.startswith(f"caxton engine API at http://127.0.0.1:{in_env}/api/v1 (data dir {tmp_path / 'env-data'})")
    line = _announced(_up("--port", str(on_flag), "--host", "127.0.0.1"), root, env, tmp_path / "flag.log")
    assert line.startswith(f"caxton engine API at http://127.0.0.1:{on_flag}/api/v1")


def test_server_start_reads_caxton_port(tmp_path: Path) -> None:
    port = free_port()
    root = _project(tmp_path / "repo", "server:\n  port: 1\n")
    command = [sys.executable, "-m", "caxton", "server", "start"]
    line = _announced(command, root, _environment(CAXTON_PORT=str(port)), tmp_path / "server.log")
    assert line.startswith(f"caxton engine API at http://127.0.0.1:{port}/api/v1")


def test_up_help_names_the_precedence(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("up", "--help")
    assert result.code == 0
    flat = " ".join(result.out.split())
    assert "--port" in flat and "--host" in flat
    assert "$CAXTON_PORT, caxton.yaml server.port, else 8080" in flat


def test_make_up_passes_port_through() -> None:
    # under `make test` the parent make's flags (MAKEFLAGS, MAKELEVEL) would add "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    made = subprocess.run(["make", "-n", "--no-print-directory", "up", "PORT=9090", f"VENV={_venv()}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=env)
    assert made.stdout.splitlines()[-1].endswith("caxton up --port 9090")


def _venv() -> str:
    """The venv running the tests: ``make -n`` only prints, and the install step is up to date or printed."""
    return str(Path(sys.executable).parent.parent)


# --- a folder without agents ---------------------------------------------------------------------
def test_up_refuses_a_folder_without_agents_like_plan(run_cli: Callable[..., CliResult], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    up = run_cli("up", "--port", "0")
    plan = run_cli("plan")
    assert (up.code, plan.code) == (1, 1)
    assert up.err.splitlines()[0] == plan.err.splitlines()[0] == "error: no caxton.yaml or agents/ directory here"
    assert "caxton init" in up.err and up.out == ""
    elsewhere = run_cli("up", "--source", str(tmp_path), "--port", "0")
    assert elsewhere.code == 1 and f"no caxton.yaml or agents/ directory in {tmp_path}" in elsewhere.err
