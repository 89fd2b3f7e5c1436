"""Helpers of the CLI tests: the environment of a ``python -m caxton`` child process."""

from __future__ import annotations

import os

from tests.support.paths import python_path


def child_env(**extra: str) -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (an outer PYTHONPATH, e.g. another typer, kept)."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = python_path(os.environ)
    env.pop("CI", None)
    return env
