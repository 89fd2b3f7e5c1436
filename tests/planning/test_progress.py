"""Apply progress: live lines per agent on a terminal, plain lines when piped."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

import pytest

from caxton.cli import progress
from tests.support.engine import EngineProcess
from tests.support.git import DesiredRepo
from tests.support.paths import REPO_ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdout (what a person at a shell has); return code and screen text."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("CI", None)
    proc = subprocess.Popen([sys.executable, "-m", "caxton", *args], stdout=slave, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("the command produced no output for a minute")
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout), ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_a_terminal_gets_one_live_line_per_agent(engine_proc: EngineProcess, desired_repo: DesiredRepo) -> None:
    code, screen = run_in_terminal(["apply", str(desired_repo.agents), "--auto-approve", "--engine", engine_proc.url])
    assert code == 0, screen
    for agent in ("data-processor", "scorer", "summarizer", "word-count"):
        assert re.search(rf"✓ {agent}\s+create\s+.*\d+ ms", screen), screen
    assert "Apply succeeded: 4 create." in screen


def test_piped_output_is_plain_lines(run_cli: object, engine_proc: EngineProcess, desired_repo: DesiredRepo) -> None:
    done = subprocess.run([sys.executable, "-m", "caxton", "apply", str(desired_repo.agents), "--auto-approve",
                           "--engine", engine_proc.url], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    assert re.search(r"^scorer: .*\[\d+ ms\]$", done.stdout, re.MULTILINE), done.stdout


def test_live_lines_follow_each_agents_status() -> None:
    lines = progress.LiveLines([("a", "create"), ("b", "update")])
    lines({"agent": "a", "action": "create", "status": "running", "message": "starting revision 1"})
    lines({"agent": "b", "action": "update", "status": "failed", "message": "revision 2 failed to start",
           "duration_ms": 12.0})
    lines({"agent": None, "status": "failed", "message": "apply failed"})
    assert lines.rows["a"].status == "running" and lines.rows["a"].started is not None
    assert (lines.rows["b"].status, lines.rows["b"].duration_ms) == ("failed", 12.0)
    from rich.console import Console

    console = Console(width=100, record=True, force_terminal=False)
    console.print(lines.render())
    text = console.export_text()
    assert "✗ b update revision 2 failed to start 12 ms" in " ".join(text.split())
    assert "a create starting revision 1" in " ".join(text.split())


@pytest.mark.parametrize("environment, expected", [({"CI": "true"}, False), ({"TERM": "dumb"}, False)])
def test_ci_and_dumb_terminals_get_plain_lines(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str],
                                               expected: bool) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert progress.live_wanted() is expected
    assert isinstance(progress.printer(False, [("a", "create")]), progress.PlainLines)


def test_no_changes_or_detach_need_no_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "live_wanted", lambda: True)
    assert isinstance(progress.printer(False, []), progress.PlainLines)
    assert isinstance(progress.printer(False, [("a", "create")]), progress.LiveLines)
    assert isinstance(progress.printer(True, [("a", "create")]), progress.JsonLines)
