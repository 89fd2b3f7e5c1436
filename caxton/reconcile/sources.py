"""Where the desired state comes from: a watched directory or a local git branch (remote: ``remote``).

A ``Source`` answers three questions for the loop: what is the current
revision (``current``: a commit sha, or a content fingerprint for a plain
directory), where to plan it from (``location``: the path and git ref handed
to ``caxton.client.plan_apply.make``), and when something may have changed
(``watch``: blocks, calling ``wake`` on changes, until ``stop`` is set).

For a git source only committed content of the tracked branch is applied:
the plan reads the branch head's commit through ``caxton.desired.loader``
(GitPython), never the work tree. A plain directory is applied as it is on
disk, watched with ``watchfiles`` (inotify; no idle CPU) or, without it, by
polling. ``open_source`` picks the kind from the argument. Called by
``caxton.reconcile.loop`` and the CLI.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from caxton.desired import loader
from caxton.errors import GitError, InvalidInput

log = logging.getLogger("caxton.reconcile")

Wake = Callable[[], None]


class Source(Protocol):
    kind: str  # "dir", "git" or "remote"
    description: str  # for logs and status; never holds credentials
    branch: str | None

    def current(self) -> str:
        """The current revision (fetches first for a remote source)."""

    def location(self, revision: str) -> tuple[str, str | None]:
        """The path and git ref to plan ``revision`` from."""

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        """Call ``wake`` when the revision may have changed, until ``stop`` is set."""

    def close(self) -> None: ...


def is_url(source: str) -> bool:
    """A git URL (``scheme://...`` or scp-like ``user@host:path``) rather than a local path."""
    if "://" in source:
        return True
    head, colon, _ = source.partition(":")
    return bool(colon) and "@" in head and "/" not in head


def open_source(
    source: str, *, branch: str | None, path: str | None, data_dir: Path, uncommitted: bool = False,
    poll: float = 0.5,
) -> Source:
    """The source named by ``--source`` (a URL, a git work tree, or a plain directory)."""
    if is_url(source):
        from caxton.reconcile import remote

        return remote.RemoteGitSource(source, branch=branch or "main", path=path, data_dir=data_dir)
    base = Path(source)
    if not base.is_dir():
        raise InvalidInput(f"source {source} is not a directory", hint="pass a directory, a git work tree or a git URL")
    target = base / path if path else base
    if uncommitted or _git_top(base) is None:
        if branch:
            raise InvalidInput(f"--branch {branch} needs a git source, and {source} is read as a plain directory",
                               hint="drop --branch, or point --source at a git work tree (without --uncommitted)")
        return DirectorySource(target, poll=poll)
    return GitBranchSource(target, branch=branch, poll=poll)


def _git_top(path: Path) -> Path | None:
    for folder in (path.resolve(), *path.resolve().parents):
        if (folder / ".git").exists():
            return folder
    return None


class DirectorySource:
    """A plain directory, applied as it is on disk (no git involved)."""

    kind = "dir"
    branch: str | None = None

    def __init__(self, path: Path, *, poll: float = 0.5) -> None:
        if not path.exists():
            raise InvalidInput(f"{path} does not exist", hint="pass the directory of your agent files")
        self.path = path
        self.poll = poll
        self.description = f"directory {path.resolve()}"

    def current(self) -> str:
        """A fingerprint of the content: the valid agents' digest plus the diagnostics."""
        state = loader.load(self.path)
        problems = "\n".join(f"{d.location} {d.code} {d.message}" for d in state.diagnostics)
        return hashlib.sha256(f"{state.digest}\n{problems}".encode()).hexdigest()

    def location(self, revision: str) -> tuple[str, str | None]:
        del revision  # the directory as it is now
        return str(self.path), None

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        roots = self._watched()
        try:
            import watchfiles
        except ImportError:  # pragma: no cover - watchfiles is a dependency; polling stays as the fallback
            self._poll(wake, stop)
            return
        try:
            for _changes in watchfiles.watch(*roots, watch_filter=_visible(roots), stop_event=stop, debounce=100, step=50,
                                             rust_timeout=1000, yield_on_timeout=False, raise_interrupt=False):
                wake()
        except (OSError, RuntimeError) as error:
            log.warning("watching %s failed (%s); polling every %.1fs instead", self.path, error, self.poll)
            self._poll(wake, stop)

    def _watched(self) -> list[Path]:
        """The directory itself plus the directories of the WASM modules its agents use."""
        roots = {self.path.resolve()}
        try:
            state = loader.load(self.path)
        except InvalidInput:
            return sorted(roots)
        base = Path(state.root)
        for agent in state.agents:
            module = getattr(agent.spec, "module", None)
            if isinstance(module, str):
                folder = (base / agent.file).parent.joinpath(module).resolve().parent
                if folder.is_dir() and not any(folder.is_relative_to(r) for r in roots):
                    roots.add(folder)
        return sorted(roots)

    def _poll(self, wake: Wake, stop: threading.Event) -> None:
        last = _stat_fingerprint(self._watched())
        while not stop.wait(self.poll):
            now = _stat_fingerprint(self._watched())
            if now != last:
                last = now
                wake()

    def close(self) -> None:
        pass


def _visible(roots: list[Path]) -> Callable[[object, str], bool]:
    """A watchfiles filter: hidden files and directories (``.git``, a ``.caxton`` data dir) are ignored."""

    def accept(_change: object, path: str) -> bool:
        target = Path(path)
        for root in roots:
            if target.is_relative_to(root):
                return not any(part.startswith(".") for part in target.relative_to(root).parts)
        return True

    return accept


def _stat_fingerprint(roots: list[Path]) -> tuple[tuple[str, int, int], ...]:
    found: list[tuple[str, int, int]] = []
    for root in roots:
        for file in root.rglob("*"):
            if any(part.startswith(".") for part in file.relative_to(root).parts):
                continue
            try:
                info = file.stat()
            except OSError:
                continue
            found.append((str(file), info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


class GitBranchSource:
    """A branch of a local git repository: only its committed content is applied."""

    kind = "git"

    def __init__(self, path: Path, *, branch: str | None, poll: float = 0.5) -> None:
        import git

        try:
            self.repo = git.Repo(path if path.is_dir() else path.parent, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
            raise GitError(f"{path} is not inside a git repository", hint="pass a git work tree") from error
        self.path = path
        self.poll = poll
        self.branch: str | None = branch or self._active_branch()
        self.ref = f"refs/heads/{self.branch}"
        self.current()  # fail now on an unknown branch
        self.description = f"git {self.repo.working_tree_dir} branch {self.branch}"

    def _active_branch(self) -> str:
        try:
            return str(self.repo.active_branch.name)
        except TypeError:
            raise GitError(f"{self.repo.working_tree_dir} has a detached HEAD: which branch should be tracked?",
                           hint="pass --branch NAME") from None

    def current(self) -> str:
        import git
        from gitdb.exc import ODBError

        try:  # reads the ref files only (no git process, no object database): cheap and thread-safe
            return str(git.SymbolicReference.dereference_recursive(self.repo, self.ref))
        except (ValueError, OSError, git.GitError, ODBError, LookupError) as error:
            raise GitError(f"branch {self.branch!r} not found in {self.repo.working_tree_dir}",
                           hint="create it, or pass the right --branch") from error

    def location(self, revision: str) -> tuple[str, str | None]:
        return str(self.path), revision

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        """Poll the branch's ref (a small file read) every ``poll`` seconds."""
        last = self._safe_current()
        while not stop.wait(self.poll):
            now = self._safe_current()
            if now != last:
                wake()
            last = now

    def _safe_current(self) -> str | None:
        try:
            return self.current()
        except GitError:
            return None

    def close(self) -> None:
        self.repo.close()
