"""Where a WASM agent's module lives, and how validation asks for its bytes.

The path rule is pure and lives here: a module path is relative to the agent
file and must stay inside the repository root (no absolute paths, no ``..``
past the root). Reading (and symlink checks) is done by a ``ModuleReader``
that ``caxton.desired`` injects; ``mapping_reader`` serves bytes from memory
(tests, git trees).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

Problem = Literal["missing", "escape", "too_large", "unreadable"]


@dataclass(frozen=True)
class ModuleLookup:
    """The result of looking a module up: its bytes, or why there are none."""

    path: str | None
    data: bytes | None = None
    problem: Problem | None = None
    size: int | None = None
    detail: str = ""


class ModuleReader(Protocol):
    """Reads the module at a root-relative posix path, refusing files above ``max_size``."""

    def __call__(self, path: str, max_size: int) -> ModuleLookup: ...


_ABSOLUTE = re.compile(r"^([A-Za-z]:)?[\\/]")


def resolve(agent_file: str, module: str) -> str | None:
    """The root-relative path of ``module`` written in ``agent_file``; ``None`` if it leaves the root."""
    if _ABSOLUTE.match(module) or module.startswith("~"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(agent_file), module.replace("\\", "/")))
    if joined == ".." or joined.startswith(("../", "/")):
        return None
    return joined


def mapping_reader(files: Mapping[str, bytes]) -> ModuleReader:
    """A reader over in-memory files keyed by root-relative posix path."""

    def read(path: str, max_size: int) -> ModuleLookup:
        data = files.get(path)
        if data is None:
            return ModuleLookup(path, problem="missing")
        if len(data) > max_size:
            return ModuleLookup(path, problem="too_large", size=len(data))
        return ModuleLookup(path, data=data, size=len(data))

    return read
