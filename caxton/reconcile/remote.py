"""A remote git repository as a source: cloned into the data dir, fetched with GitPython.

Credentials come from the environment, never from files we write and never
into a log: ``CAXTON_GIT_TOKEN`` (with ``CAXTON_GIT_USERNAME``, default
``x-access-token``) becomes an ``Authorization: Basic`` header handed to git
through ``GIT_CONFIG_*`` environment variables, so it appears neither in the
command line, nor in ``.git/config``, nor in the clone's remote URL. A
``user:password@`` in the URL is taken out of it the same way. Every message
shows the URL without credentials (``redact``). ``GIT_TERMINAL_PROMPT=0``: git
never waits for a password. Called by ``caxton.reconcile.sources.open_source``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from caxton.errors import GitError

if TYPE_CHECKING:
    import git

TOKEN_ENV = "CAXTON_GIT_TOKEN"
USERNAME_ENV = "CAXTON_GIT_USERNAME"
DEFAULT_USERNAME = "x-access-token"
GIT_TIMEOUT = 120.0


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its ``user:password@`` part, and that user and password."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), unquote(user) or None, unquote(password) or None


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL credentials and the given secrets replaced by ``***``."""
    text = re.sub(r"(\w+://)[^/\s@]+@", r"\1***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def git_environment(url: str, user: str | None, password: str | None,
                    env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for git commands: no prompts; an auth header for http(s) when a credential is known."""
    env = os.environ if env is None else env
    out = {"GIT_TERMINAL_PROMPT": "0"}
    secret = password or env.get(TOKEN_ENV)
    if secret and url.startswith(("http://", "https://")):
        login = user or env.get(USERNAME_ENV) or DEFAULT_USERNAME
        header = base64.b64encode(f"{login}:{secret}".encode()).decode("ascii")
        out |= {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {header}"}
    return out


class RemoteGitSource:
    """A branch of a remote repository, mirrored under ``DATA_DIR/sources/``."""

    kind = "remote"

    def __init__(self, url: str, *, branch: str, path: str | None, data_dir: Path) -> None:
        self.url, user, password = split_credentials(url)
        self.branch: str | None = branch
        self.subpath = path or ""
        self.description = f"git {redact(self.url)} branch {branch}"
        self._env = git_environment(self.url, user, password)
        self._secrets = tuple(s for s in (password, os.environ.get(TOKEN_ENV)) if s)
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.clone_dir = data_dir / "sources" / key
        self._lock = threading.Lock()
        self._repo: git.Repo | None = self._open() if (self.clone_dir / ".git").is_dir() else None

    def _open(self) -> git.Repo:
        import git

        repo = git.Repo(self.clone_dir)
        if repo.remotes and repo.remotes.origin.url == self.url:
            return repo
        repo.close()
        raise GitError(f"{self.clone_dir} holds a clone of another repository",
                       hint="remove it, or use another --data-dir")

    def _clone(self) -> git.Repo:
        """Clone on first use (an unreachable remote at start-up is one failed pass, not a crash)."""
        import git

        self.clone_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            return git.Repo.clone_from(self.url, self.clone_dir, env=self._env, no_checkout=True,
                                       kill_after_timeout=GIT_TIMEOUT)
        except git.GitCommandError as error:
            raise self._error("clone", error) from None

    def _error(self, what: str, error: Exception) -> GitError:
        detail = str(getattr(error, "stderr", "") or error).strip().splitlines()
        last = detail[-1].strip() if detail else type(error).__name__
        return GitError(redact(f"git {what} of {self.url} failed: {last}", self._secrets),
                        hint=f"check the URL, the network and the credentials (${TOKEN_ENV}, ${USERNAME_ENV})")

    def current(self) -> str:
        """Fetch the branch, then return its commit."""
        import git

        refspec = f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
        with self._lock:
            if self._repo is None:
                self._repo = self._clone()
            try:
                self._repo.git.fetch("origin", refspec, env=self._env, kill_after_timeout=GIT_TIMEOUT)
                return str(self._repo.commit(f"refs/remotes/origin/{self.branch}").hexsha)
            except (git.GitCommandError, ValueError) as error:
                raise self._error(f"fetch of branch {self.branch!r}", error) from None

    def location(self, revision: str) -> tuple[str, str | None]:
        return str(self.clone_dir / self.subpath), revision

    def watch(self, wake: object, stop: threading.Event) -> None:
        """Nothing to watch: the loop fetches every interval and on a webhook."""
        del wake
        stop.wait()

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
