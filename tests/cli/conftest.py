"""Helpers of the CLI tests: the environment of a ``python -m caxton`` child process."""

from __future__ import annotations

import os

from tests.support.paths import REPO_ROOT


def child_env(**extra: str) -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (an outer PYTHONPATH, e.g. another typer, kept)."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env.pop("CI", None)
    return env
