"""The README's examples run as written (where they can: the engine is a fixture here).

Every ``caxton`` command in a bash block must exist (its ``--help`` works);
the validate examples, the CI flow and the operator commands are executed
against a real engine subprocess.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.engine import EngineProcess, running_engine
from tests.support.git import commit, init_repo

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def commands() -> list[str]:
    """Each logical line of every bash block (continuations joined, comments dropped)."""
    lines: list[str] = []
    for block in BLOCKS:
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def caxton_invocations() -> list[list[str]]:
    """The command path (e.g. ['agents', 'send']) of every caxton call in the README."""
    found = []
    for line in commands():
        for part in re.split(r"&&|;|\|", line):
            words = shlex.split(part.strip().rstrip("&").strip())
            if words and words[0] == "caxton":
                path = [w for w in words[1:3] if not w.startswith("-") and re.fullmatch(r"[a-z-]+", w)]
                found.append(path)
    return found


def env_with(engine: EngineProcess | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(ROOT)
    if engine is not None:
        env["CAXTON_ENGINE_URL"] = engine.url
    return env


def test_readme_quick_start_is_make_up_and_make_test() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.findall(r"^make \w+", quick, flags=re.M) == ["make up", "make test"]


@pytest.mark.parametrize("path", caxton_invocations(), ids=lambda p: " ".join(p) or "caxton")
def test_every_readme_command_exists(run_cli, path: list[str]) -> None:  # type: ignore[no-untyped-def]
    groups = {"agents", "lock", "server", "schema", "memory", "rollout", "reconcile"}
    args = path if path and path[0] in groups else path[:1]
    result = run_cli(*args, "--help")
    assert result.code == 0, f"caxton {' '.join(args)} --help failed: {result.err}"


def test_readme_flow_runs_against_an_engine(tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    shutil.copytree(ROOT / "agents", work / "agents")
    shutil.copy(ROOT / "examples" / "quickstart" / "caxton.yaml", work / "caxton.yaml")
    repo = init_repo(work)
    for message in ("first", "second"):
        (work / "NOTES.txt").write_text(message)
        commit(repo, message)
    with running_engine(tmp_path) as engine:
        _add_environment(work / "caxton.yaml", "prod", engine.url)  # the README's `--env prod`
        for line in commands():
            if line.startswith(("make ", "export ")) or line.endswith("&"):
                continue  # the engine and long-running loops are fixtures here
            result = subprocess.run(["bash", "-c", line], cwd=work, env=env_with(engine), capture_output=True,
                                    text=True, timeout=120, stdin=subprocess.DEVNULL)
            assert result.returncode == 0, f"{line!r} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def _add_environment(path: Path, name: str, url: str) -> None:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("environments", {})[name] = {"engines": [url]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
