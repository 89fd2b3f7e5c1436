"""``caxton rollout status AGENT --watch`` on the engine's event stream, against a real engine subprocess:
redrawn in place on a terminal, one line (or JSON line) per change when piped, ending with the rollout."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from caxton.client import rollouts as rollout_api
from tests.engine.test_event_stream import streams_open
from tests.rollouts.test_durability import create, wait_for, write_agent
from tests.support.engine import EngineProcess, no_memory, running_engine
from tests.support.paths import python_path

#: No traffic and a long interval: the rollout waits at its first step until the test ends it.
WAITING = {"strategy": "canary", "steps": [50, 100], "interval": "600s", "analysis": {"min_requests": 1}}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("watch")
    with running_engine(root, config=no_memory(root)) as process:
        yield process


@pytest.fixture(scope="module")
def repo(engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from caxton.cli import main as cli_main

    root = tmp_path_factory.mktemp("repo")
    write_agent(root, 1)
    assert cli_main.main(["apply", str(root / "agents"), "--engine", engine.url, "--auto-approve"]) == 0
    return root


def begin(engine: EngineProcess, repo: Path, version: int, run_cli: Any) -> str:
    """A canary of ``echo`` to ``version``, waiting at its first step; its id (no stream open before)."""
    streams_open(engine, 0)
    write_agent(repo, version, WAITING)
    detached = run_cli("apply", str(repo / "agents"), "--engine", engine.url, "--auto-approve", "--detach")
    assert detached.code == 0, detached.err
    wait_for(engine, lambda r: r["candidate_version"] == f"1.0.{version}" and r["status"] == "running", 30)
    with engine.client() as client:
        return rollout_api.status(client, "echo", limit=1)[0].id


def watch(engine: EngineProcess, *args: str, terminal: bool = False) -> tuple[subprocess.Popen[bytes], int | None]:
    """``caxton rollout status echo --watch ARGS`` started, stdout piped or a pseudo-terminal (its fd)."""
    env = {**os.environ, "PYTHONPATH": python_path(os.environ), "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("CI", None)
    command = [sys.executable, "-m", "caxton", "rollout", "status", "echo", "--watch", "--engine", engine.url, *args]
    if not terminal:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env), None
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    return proc, master


def screen(master: int) -> str:
    chunks: list[bytes] = []
    while select.select([master], [], [], 60)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def scrub(text: str, rollout: str) -> str:
    text = text.replace(rollout, "<rollout>")
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<time>", text)
    text = re.sub(r"by apply [0-9a-f]{12} by \S+ pid \d+", "by apply <apply> by <actor>", text)
    return re.sub(r"aborted by [^;\n]+? pid \d+", "aborted by <actor>", text)


def test_piped_watch_prints_the_rollout_then_one_line_per_change_and_exits_3_on_rollback(
    engine: EngineProcess, repo: Path, run_cli: Any, snapshot: SnapshotAssertion,
) -> None:
    rollout = begin(engine, repo, 2, run_cli)
    proc, _ = watch(engine)
    streams_open(engine, 1)  # it follows the stream now
    assert run_cli("rollout", "abort", "echo", "--engine", engine.url).code == 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "\x1b[" not in out.decode()
    assert scrub(out.decode(), rollout) == snapshot(name="stdout")
    assert scrub(err.decode(), rollout) == snapshot(name="stderr")


def test_json_watch_prints_json_lines_and_exits_0_when_promoted(
    engine: EngineProcess, repo: Path, run_cli: Any,
) -> None:
    rollout = begin(engine, repo, 3, run_cli)
    proc, _ = watch(engine, "-o", "json")
    streams_open(engine, 1)
    assert run_cli("rollout", "promote", "echo", "--engine", engine.url).code == 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert lines[0]["event"] == "rollouts" and lines[0]["rollouts"][0]["id"] == rollout
    assert lines[0]["rollouts"][0]["status"] == "running"
    assert lines[-1]["event"] == "event" and lines[-1]["what"] == "rollout_succeeded"
    assert lines[-1]["data"]["rollout"] == rollout and "promoted by" in lines[-1]["message"]


def test_a_terminal_watch_redraws_the_rollout_in_place(engine: EngineProcess, repo: Path, run_cli: Any) -> None:
    begin(engine, repo, 4, run_cli)
    proc, master = watch(engine, terminal=True)
    assert master is not None
    streams_open(engine, 1)
    assert run_cli("rollout", "abort", "echo", "--engine", engine.url).code == 0
    shown = screen(master)
    assert proc.wait(60) == 3, shown
    assert "\x1b[2K" in shown or "\x1b[1A" in shown, "no redraw: " + shown[-500:]  # rich Live moves the cursor up
    text = ANSI.sub("", shown)
    assert text.count("echo: canary rollout") >= 2  # drawn, then drawn again in place
    assert "RUNNING at step 1/2 (50 %)" in text and "ROLLED BACK" in text
    assert "rolled back: aborted by" in text


def test_a_watch_of_a_finished_rollout_shows_it_and_exits_by_its_outcome(engine: EngineProcess, repo: Path,
                                                                         run_cli: Any) -> None:
    begin(engine, repo, 5, run_cli)
    assert run_cli("rollout", "promote", "echo", "--engine", engine.url).code == 0
    done = run_cli("rollout", "status", "echo", "--watch", "--limit", "1", "--engine", engine.url)
    assert done.code == 0 and "SUCCEEDED" in done.out and done.out.count("echo: canary rollout") == 1


def test_a_watch_of_every_agent_ends_when_no_rollout_shown_is_active(engine: EngineProcess, repo: Path,
                                                                     run_cli: Any) -> None:
    rollout = begin(engine, repo, 6, run_cli)
    env = {**os.environ, "PYTHONPATH": python_path(os.environ)}
    proc = subprocess.Popen([sys.executable, "-m", "caxton", "rollout", "status", "--watch", "--limit", "2",
                             "--engine", engine.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    streams_open(engine, 1)
    assert run_cli("rollout", "abort", "echo", "--engine", engine.url).code == 0
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err  # without an agent, the outcome is shown, not turned into an exit code
    lines = out.decode().splitlines()
    assert lines[0] == f"echo: canary rollout {rollout} RUNNING at step 1/2 (50 %)"
    assert lines[-1].startswith(f"echo: canary rollout {rollout} rolled back: aborted by "), lines
