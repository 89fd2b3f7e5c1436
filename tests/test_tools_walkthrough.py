"""The walkthrough of docs/tools.md runs as written: every ``bash`` block in order, in one shell's working
directory; a block the prose starts "in another terminal" runs in the background (the engine, the
OpenAI-compatible test server) until the end; a ``text`` block right after a block is its exact output.
Ports 8080 and 8788 are replaced by free ones (other tests run beside this one)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.paths import free_port
from tests.support.poll import wait_for

ROOT = Path(__file__).resolve().parents[1]
SECTION = (ROOT / "docs" / "tools.md").read_text("utf-8").split("## Walkthrough\n", 1)[1].split("\n## ", 1)[0]


@dataclass(frozen=True)
class Step:
    script: str
    background: bool
    output: str | None


def steps(section: str) -> list[Step]:
    """The bash blocks of the section with their expected output (the text block that follows, if any)."""
    parts = re.split(r"```(bash|text)\n(.*?)```", section, flags=re.S)
    found: list[Step] = []
    for index in range(0, len(parts) - 1, 3):
        prose, kind, body = parts[index], parts[index + 1], parts[index + 2]
        if kind == "bash":
            found.append(Step(body, "another terminal" in prose, None))
        else:
            assert found and found[-1].output is None, "a text block must follow a bash block"
            found[-1] = Step(found[-1].script, found[-1].background, body)
    return found


def test_the_walkthrough_has_what_it_promises() -> None:
    found = steps(SECTION)
    assert [s.background for s in found].count(True) == 2  # the engine, the test server
    assert sum(s.output is not None for s in found) == 3
    assert any("editor-gpt" in s.script for s in found) and any("/tool word-count" in s.script for s in found)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A copy of what the walkthrough reads from the repository root: the quickstart and the test server."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    return tmp_path


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_the_walkthrough_runs_as_written(work: Path, background: list[subprocess.Popen[bytes]]) -> None:
    ports = {"8080": str(free_port()), "8788": str(free_port())}
    engine = f"http://127.0.0.1:{ports['8080']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]), PYTHONPATH=str(ROOT),
               CAXTON_ENGINE_URL=engine, CAXTON_NO_CACHE="1")
    cwd, where = work, work / ".cwd"
    for step in steps(SECTION):
        script = re.sub(r"\b(8080|8788)\b", lambda m: ports[m.group(1)], step.script)
        if step.background:
            logs = (work / f"background-{len(background)}.log").open("wb")
            background.append(subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=logs,
                                               stderr=subprocess.STDOUT, start_new_session=True))
            _wait_until_up(script, engine, ports["8788"], background[-1], work)
            continue
        done = subprocess.run(["bash", "-e", "-c", f'{script}\npwd > "{where}"'], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{script}\nexited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        cwd = Path(where.read_text().strip())
        if step.output is not None:
            assert done.stdout == step.output, script


def _wait_until_up(script: str, engine: str, llm_port: str, process: subprocess.Popen[bytes], work: Path) -> None:
    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{script} exited:\n" + "\n".join(
                p.read_text(errors="replace") for p in work.glob("background-*.log")))
        if "server start" in script:
            return httpx.get(f"{engine}/api/v1/ready", timeout=2).status_code == 200
        with socket.create_connection(("127.0.0.1", int(llm_port)), timeout=1):
            return True

    wait_for(up, timeout=60, what=script.strip().splitlines()[0])
