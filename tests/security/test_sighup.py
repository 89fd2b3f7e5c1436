"""SIGHUP reloads the settings (log level, and every ``Engine.on_reload`` hook) and never stops the engine.

Real processes: ``caxton server start`` under message load, and ``caxton up``. In-process: the hooks'
contract (a failing hook does not stop the others; a bad config reaches no hook).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.engine.core import Engine
from caxton.engine.serving.reload import Reloader
from caxton.errors import InvalidInput
from caxton.spec.project import ProjectConfig
from tests.engine.helpers import SCORER_WASM, wasm_spec
from tests.support.engine import EngineProcess, running_engine
from tests.support.paths import EXAMPLES, free_port, python_path

RELOADED = "settings reloaded"


def _wait_for(predicate: Callable[[], bool], what: Callable[[], str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; log:\n{what()}")
        time.sleep(0.02)


def _hup_and_wait(engine: EngineProcess, line: str) -> None:
    """SIGHUP the engine and wait until one more ``line`` is in its log."""
    before = engine.log_text().count(line)
    assert engine.proc is not None
    engine.proc.send_signal(signal.SIGHUP)
    _wait_for(lambda: engine.log_text().count(line) > before, engine.log_text)


def test_sighup_under_message_load_drops_nothing_and_reloads_the_log_level(tmp_path: Path) -> None:
    config = tmp_path / "caxton.yaml"
    config.write_text("memory:\n  enabled: false\nlogging:\n  level: info\n")
    with running_engine(tmp_path, config=config) as engine, engine.client() as client:
        agent_api.deploy(client, wasm_spec("scorer"), SCORER_WASM)
        stop = threading.Event()
        sent: list[int] = []
        failed: list[str] = []

        def send() -> None:
            with engine.client() as sender:
                while not stop.is_set():
                    try:
                        assert agent_api.send(sender, "scorer", "under load").reply["agent"] == "scorer"
                        sent.append(1)
                    except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                        failed.append(repr(error))

        load = threading.Thread(target=send)
        load.start()
        try:
            for _ in range(4):
                _hup_and_wait(engine, RELOADED)
            config.write_text("memory:\n  enabled: false\nlogging:\n  level: warning\n")
            _hup_and_wait(engine, "log level: info -> warning")
            config.write_text("memory:\n  enabled: false\nlogging:\n  level: [loud\n")
            _hup_and_wait(engine, "reload refused")
            config.write_text("memory:\n  enabled: false\nlogging:\n  level: loud\n")
            _hup_and_wait(engine, "logging.level")
            count = len(sent)
            _wait_for(lambda: len(sent) > count + 10, engine.log_text)
        finally:
            stop.set()
            load.join(30)
        assert failed == []
        assert engine.running
        assert status_api.health(client).status == "healthy"
        assert engine.terminate() == 0  # SIGTERM still shuts down cleanly after the reloads
        log = engine.log_text()
    # the four reloads at level info said so; the one that switched to warning, and later ones, are quiet
    assert log.count(RELOADED) == 4, log
    assert f"{config}:5:1: invalid YAML" in log  # the broken file: where and why
    assert f"{config}:4: logging.level: Input should be" in log  # the invalid value: where and why


def test_caxton_up_reloads_on_sighup_and_keeps_serving(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "summarizer.toml").write_bytes((EXAMPLES / "agents" / "summarizer.toml").read_bytes())
    (project / "caxton.yaml").write_text("memory:\n  enabled: false\nlogging:\n  level: info\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env["PYTHONPATH"] = python_path(env)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "caxton", "up", "--port", str(port), "--poll-interval",
                                 "100ms"], stdout=out, stderr=subprocess.STDOUT, cwd=project, env=env)
    try:
        _wait_for(lambda: "caxton engine API at" in log.read_text(), log.read_text, timeout=60.0)
        for expected in (1, 2):
            proc.send_signal(signal.SIGHUP)
            _wait_for(lambda n=expected: log.read_text().count(RELOADED) >= n, log.read_text)  # type: ignore[misc]
        (project / "caxton.yaml").write_text("memory:\n  enabled: false\nlogging:\n  level: [\n")
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "reload refused" in log.read_text(), log.read_text)
        assert proc.poll() is None
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30.0) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10.0)


# --- the hooks' contract, in-process ---------------------------------------------------------------
def test_a_failing_hook_is_logged_and_the_others_still_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine(ProjectConfig(), tmp_path / "data")
    seen: list[str] = []

    def broken(_: ProjectConfig) -> None:
        raise RuntimeError("tokens file vanished")

    engine.on_reload += [broken, lambda config: seen.append(config.logging.level)]
    new = ProjectConfig.model_validate({"logging": {"level": "error"}})
    assert Reloader(engine, lambda: new).reload() is True
    assert seen == ["error"]
    assert "broken failed" in caplog.text and "tokens file vanished" in caplog.text


def test_a_bad_config_reaches_no_hook_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(ProjectConfig(), tmp_path / "data")
    seen: list[ProjectConfig] = []
    engine.on_reload.append(seen.append)

    def bad() -> ProjectConfig:
        raise InvalidInput("caxton.yaml:3:1: invalid YAML: found '<stream end>'", hint="fix the YAML syntax")

    assert Reloader(engine, bad).reload() is False
    assert seen == []
    assert "reload refused, the settings in effect stay: caxton.yaml:3:1: invalid YAML" in caplog.text
