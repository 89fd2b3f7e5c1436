"""The engines of a ``caxton.yaml`` environment, in wave order.

``--env NAME`` makes the reconcile loop apply to each engine of
``environments.NAME.engines`` in turn (a rolling wave, see
``caxton.reconcile.passes``); the environment may also name the branch to
track. Called by ``caxton reconcile`` and ``caxton up``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from caxton.errors import InvalidInput, ValidationFailed
from caxton.reconcile.passes import Target
from caxton.validation import pipeline

PROJECT_FILE = "caxton.yaml"


@dataclass(frozen=True)
class Wave:
    name: str
    targets: list[Target]
    branch: str | None


def find_config(explicit: Path | None, source: str) -> Path:
    """``--config``, else ./caxton.yaml, else caxton.yaml at a local source."""
    candidates = [explicit] if explicit is not None else [Path(PROJECT_FILE), Path(source) / PROJECT_FILE]
    for path in candidates:
        if path is not None and path.is_file():
            return path
    shown = explicit or PROJECT_FILE
    raise InvalidInput(f"--env needs {shown}, which was not found",
                       hint="run from the project directory, or pass --config PATH")


def load(config: Path, name: str, token: str | None) -> Wave:
    """The environment ``name`` of ``config`` (invalid file or unknown name -> an error saying which)."""
    project, found = pipeline.validate_project(str(config), config.read_bytes())
    if project is None:
        first = found[0].message if found else "unreadable"
        raise ValidationFailed(f"{config} is invalid: {first}", hint=f"run `caxton validate {config.parent}`")
    environment = project.environments.get(name)
    if environment is None:
        known = ", ".join(sorted(project.environments)) or "none"
        raise InvalidInput(f"no environment {name!r} in {config} (environments: {known})",
                           hint="add it under `environments:` with its `engines:` list")
    return Wave(name, [Target(url, token) for url in environment.engines], environment.branch)
