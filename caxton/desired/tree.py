"""Read-only views of a desired-state repository: the work tree or a git commit.

Both views use root-relative posix paths and enforce the root boundary:
symlinks (on disk or stored in git) that lead outside the root are refused.
``FsTree`` reads the file system; ``GitTree`` reads blobs of one commit via
GitPython without touching the work tree. Used by ``caxton.desired.loader``.

``FsTree`` never opens what is not a regular file: a path is resolved and
stat'ed first, so a FIFO, socket or device named ``x.md`` (CX108), a symlink
loop (CX109) or a symlink out of the root (CX402) becomes a diagnostic of that
file instead of a hang or a crash; the open itself is non-blocking and re-checked.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from caxton.validation.documents import MAX_FILE_BYTES
from caxton.validation.modules import ModuleLookup
from caxton.validation.results import AGENT_SUFFIXES, AgentFile

if TYPE_CHECKING:
    import git

Kind = Literal["file", "dir"]
_SYMLINK_MODE = 0o120000
_MAX_LINKS = 8


def is_agent_name(name: str) -> bool:
    """Agent files: ``*.md`` except README.md, and ``*.toml``; hidden files never."""
    lower = name.lower()
    return not name.startswith(".") and lower.endswith(AGENT_SUFFIXES) and lower != "readme.md"


class Tree(Protocol):
    """What the loader needs from a repository view."""

    def kind(self, path: str) -> Kind | None: ...

    def agent_files(self, directory: str) -> list[str]: ...

    def read_agent(self, path: str) -> AgentFile: ...

    def read_module(self, path: str, max_size: int) -> ModuleLookup: ...


class _Refused(Exception):
    """A path ``FsTree`` will not open: the diagnostic code and why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def _special(mode: int) -> str:
    return next((name for test, name in _SPECIAL if test(mode)), "not a regular file")


class FsTree:
    """The work tree under ``root`` (an absolute path)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = root.resolve()

    def _regular(self, path: str) -> Path:
        """The real path of ``path``: a regular file inside the root, checked without opening it."""
        full = self.root / path
        try:
            real = full.resolve(strict=True)
        except RuntimeError as error:  # Python 3.11 reports a symlink loop so
            raise _Refused("CX109", "symlink loop (a link that leads back to itself)") from error
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise _Refused("CX109", "symlink loop (a link that leads back to itself)") from error
            raise _Refused("CX101", error.strerror or str(error)) from error
        if not real.is_relative_to(self._real_root):
            raise _Refused("CX402", "symlink points outside the repository root")
        try:
            mode = real.stat().st_mode
        except OSError as error:
            raise _Refused("CX101", error.strerror or str(error)) from error
        if not stat.S_ISREG(mode):
            raise _Refused("CX108", f"it is {_special(mode)}, not a regular file (skipped unopened)")
        return real

    @staticmethod
    def _read(real: Path, limit: int) -> bytes:
        """Read at most ``limit`` bytes; non-blocking open, re-checked (the file may have been swapped)."""
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as error:
            raise _Refused("CX101", error.strerror or str(error)) from error
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise _Refused("CX108", f"it is {_special(mode)}, not a regular file (skipped)")
            try:
                return handle.read(limit)
            except OSError as error:
                raise _Refused("CX101", error.strerror or str(error)) from error

    def kind(self, path: str) -> Kind | None:
        """``dir`` for a directory; ``file`` for anything else that is there (even a FIFO or a
        symlink loop: reading it reports why it is unusable)."""
        full = self.root / path
        if full.is_dir():
            return "dir"
        return "file" if os.path.lexists(full) else None

    def agent_files(self, directory: str) -> list[str]:
        found = []
        base = self.root / directory
        for current, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(current).relative_to(self.root).as_posix()
            found += [posixpath.join(rel, f) if rel != "." else f for f in files if is_agent_name(f)]
        return sorted(found)

    def read_agent(self, path: str) -> AgentFile:
        try:
            return AgentFile(path, self._read(self._regular(path), MAX_FILE_BYTES + 1))
        except _Refused as refused:
            return AgentFile(path, None, refused.reason, code=refused.code)

    def read_module(self, path: str, max_size: int) -> ModuleLookup:
        if not os.path.lexists(self.root / path):
            return ModuleLookup(path, problem="missing")
        try:
            real = self._regular(path)
            size = real.stat().st_size
            if size > max_size:
                return ModuleLookup(path, problem="too_large", size=size)
            data = self._read(real, max_size)
        except _Refused as refused:
            if refused.code == "CX402":
                return ModuleLookup(path, problem="escape", detail="a symlink leads outside the root")
            if refused.code == "CX101":
                return ModuleLookup(path, problem="unreadable", detail=refused.reason)
            return ModuleLookup(path, problem="missing", detail=refused.reason)
        except OSError as error:
            return ModuleLookup(path, problem="unreadable", detail=error.strerror or str(error))
        return ModuleLookup(path, data=data, size=len(data))


class GitTree:
    """The files of one commit; paths are relative to the repository top."""

    def __init__(self, commit: git.Commit) -> None:
        self.commit = commit
        self.tree = commit.tree

    def _object(self, path: str) -> git.Blob | git.Tree | None:
        if path in ("", "."):
            return self.tree
        try:
            found = self.tree / path
        except KeyError:
            return None
        return found if found.type in ("blob", "tree") else None  # type: ignore[return-value]

    def _follow(self, path: str) -> tuple[str | None, git.Blob | git.Tree | None, str]:
        """Follow stored symlinks: ``(path, object, "")``, or ``(None, None, code)`` when one
        leads outside the root (CX402) or they loop (CX109: more links than a chain may have)."""
        for _ in range(_MAX_LINKS):
            found = self._object(path)
            if found is None or found.type == "tree" or found.mode != _SYMLINK_MODE:
                return path, found, ""
            target = found.data_stream.read().decode("utf-8", "replace")
            if target.startswith("/"):
                return None, None, "CX402"
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if path == ".." or path.startswith("../"):
                return None, None, "CX402"
        return None, None, "CX109"

    def kind(self, path: str) -> Kind | None:
        real, found, _ = self._follow(path)
        if real is None:
            return "file"  # reading it reports the escape or the loop
        if found is None:
            return None
        return "dir" if found.type == "tree" else "file"

    def agent_files(self, directory: str) -> list[str]:
        base = self._object(directory)
        if base is None or base.type != "tree":
            return []
        found: list[str] = []
        for item in base.traverse():  # type: ignore[union-attr]
            path = str(item.path)  # type: ignore[union-attr]
            parts = path.split("/")
            if item.type == "blob" and is_agent_name(parts[-1]) and not any(p.startswith(".") for p in parts):  # type: ignore[union-attr]
                found.append(path)
        return sorted(found)

    def _blob_bytes(self, blob: git.Blob, limit: int) -> bytes:
        return bytes(blob.data_stream.read(limit + 1))

    def read_agent(self, path: str) -> AgentFile:
        real, found, code = self._follow(path)
        if real is None:
            reason = "symlink loop (a link that leads back to itself)" if code == "CX109" else \
                "symlink points outside the repository root"
            return AgentFile(path, None, reason, code=code)
        if found is None or found.type != "blob":
            return AgentFile(path, None, "not a file at this revision")
        return AgentFile(path, self._blob_bytes(found, MAX_FILE_BYTES))  # type: ignore[arg-type]

    def read_module(self, path: str, max_size: int) -> ModuleLookup:
        real, found, code = self._follow(path)
        if code == "CX109":
            return ModuleLookup(path, problem="missing", detail="symlink loop")
        if real is None:
            return ModuleLookup(path, problem="escape", detail="a symlink leads outside the root")
        if found is None or found.type != "blob":
            return ModuleLookup(path, problem="missing")
        size = int(found.size)
        if size > max_size:
            return ModuleLookup(path, problem="too_large", size=size)
        data = found.data_stream.read()
        return ModuleLookup(path, data=bytes(data), size=len(data))


def head_commit(start: Path) -> str | None:
    """The commit HEAD points at, read from ``.git`` without GitPython (fast); ``None`` if unknown."""
    for folder in (start, *start.parents):
        marker = folder / ".git"
        if marker.exists():
            return _read_head(_git_dir(marker))
    return None


def _git_dir(marker: Path) -> Path:
    if marker.is_file():
        text = marker.read_text("utf-8", "replace").strip()
        if text.startswith("gitdir:"):
            return (marker.parent / text.removeprefix("gitdir:").strip()).resolve()
    return marker


def _read_head(gitdir: Path) -> str | None:
    try:
        head = (gitdir / "HEAD").read_text("utf-8").strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.removeprefix("ref:").strip()
        common = gitdir
        if (gitdir / "commondir").is_file():
            common = (gitdir / (gitdir / "commondir").read_text("utf-8").strip()).resolve()
        for base in (gitdir, common):
            if (base / ref).is_file():
                return (base / ref).read_text("utf-8").strip() or None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text("utf-8").splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
    except OSError:
        return None
    return None
