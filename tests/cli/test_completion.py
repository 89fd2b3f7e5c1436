"""Shell completion: the script, its installation (into a temporary HOME), and completing words."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import child_env


def in_bash(command: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m caxton ...`` as a child of bash (what typer's shell detection looks for), HOME in tmp."""
    line = f"{shlex.quote(sys.executable)} -m caxton {command}; exit $?"  # `; exit` keeps bash as the parent
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=child_env(HOME=str(home), **env),
                          timeout=60, check=False)


def test_show_completion_prints_the_bash_script(tmp_path: Path) -> None:
    done = in_bash("--show-completion", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "_CAXTON_COMPLETE=complete_bash" in done.stdout
    assert "complete -o default -F _caxton_completion caxton" in done.stdout
    assert list(tmp_path.iterdir()) == []  # showing installs nothing


def test_install_completion_writes_only_under_home(tmp_path: Path) -> None:
    done = in_bash("--install-completion", tmp_path)
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "caxton.sh"
    assert f"bash completion installed in {script}" in done.stdout
    assert "_CAXTON_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


@pytest.mark.parametrize(("words", "expected"), [
    ("caxton val", ["validate"]),
    ("caxton agents st", ["status"]),
    ("caxton validate --st", ["--strict"]),
    ("caxton plan --detailed", ["--detailed-exitcode"]),
])
def test_completion_completes_commands_and_options(tmp_path: Path, words: str, expected: list[str]) -> None:
    done = in_bash("", tmp_path, _CAXTON_COMPLETE="complete_bash", COMP_WORDS=words,
                   COMP_CWORD=str(len(words.split()) - 1))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected
