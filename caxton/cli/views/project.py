"""Views of ``caxton init``: the desired-state repository it wrote."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton.cli.views.registry import json_view, text_view


@dataclass(frozen=True)
class Initialised:
    """A repository scaffolded in ``directory`` with ``files`` (relative paths)."""

    directory: Path
    files: list[str]


@json_view("Initialised")
def initialised_json(done: Initialised) -> Any:
    return {"directory": str(done.directory.resolve()), "files": done.files}


@text_view("Initialised")
def initialised_text(done: Initialised) -> Iterator[str]:
    yield f"Created a Caxton desired-state repository in {done.directory}:"
    for relative in done.files:
        yield f"  {relative}"
    where = "" if done.directory == Path(".") else f"cd {done.directory} && "
    yield f"Next: {where}caxton validate && caxton up"
    yield "Then `git init` and commit: `caxton up` in a git work tree serves each commit of its branch."
