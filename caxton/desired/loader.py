"""Load the desired state from a directory, a git revision, or a list of files.

Which files are agents: ``*.md`` (except README.md) and ``*.toml`` anywhere
under the agents directory, hidden files and directories skipped; everything
else there (``.wasm``, ``.wat``, images...) is ignored. The agents directory
is ``caxton.yaml``'s ``agents_dir`` (default ``agents/``) when PATH is a
project directory (it holds ``caxton.yaml`` or an ``agents/`` folder), else
PATH itself. The root (boundary for module paths) is the git top for a git
source, else the nearest ancestor holding ``caxton.yaml`` or ``.git``.

Never raises for bad files (they become diagnostics); raises ``GitError`` /
``InvalidInput`` only for unusable arguments. Called by ``caxton validate``,
the planner's callers and the engine's reconcile loop. The CLI passes
``Options(cache=True, jobs=N)``: per-file results kept between runs
(``caxton.desired.cache``) and worker processes for the files not in the
cache (``caxton.desired.workers``); other callers validate everything in-process.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from caxton.desired.cache import ValidationCache, to_entry
from caxton.desired.model import DesiredAgent, DesiredState
from caxton.desired.tree import FsTree, GitTree, Tree, head_commit, is_agent_name
from caxton.errors import GitError, InvalidInput
from caxton.spec.diagnostics import Diagnostic
from caxton.spec.digest import state_digest
from caxton.validation.documents import diagnostic
from caxton.validation.results import (
    AGENT_SUFFIXES,
    AgentFile,
    FileResult,
    ValidatedAgent,
    ValidationResult,
    combine,
)

PROJECT_FILE = "caxton.yaml"
DEFAULT_AGENTS_DIR = "agents"


@dataclass(frozen=True)
class Options:
    """How to validate: reuse cached per-file results (``cache``), and how many worker processes."""

    cache: bool = False
    jobs: int = 1


SERIAL = Options()


def find_root(directory: Path) -> Path:
    """Nearest ancestor (inclusive) holding caxton.yaml or .git; else the directory itself."""
    for folder in (directory, *directory.parents):
        if (folder / PROJECT_FILE).is_file() or (folder / ".git").exists():
            return folder
    return directory


def load(path: Path | str, *, ref: str | None = None, options: Options = SERIAL) -> DesiredState:
    """The desired state at ``path`` (a directory or one agent file), optionally at git ``ref``."""
    target = Path(os.path.abspath(path))
    if ref is not None:
        return _load_git(target, ref, options)
    if not target.exists():
        raise InvalidInput(f"{path} does not exist", hint="pass a directory of agent files or an agent file")
    if target.is_file():
        return load_files([target], options=options)
    root = find_root(target)
    rel = _rel(target, root)
    return _load_tree(FsTree(root), root, rel, options, source=str(target), git_commit=head_commit(root))


def load_files(paths: Sequence[Path | str], *, options: Options = SERIAL) -> DesiredState:
    """Validate the given files (pre-commit style), choosing them as ``load`` of the project would.

    In a project (its root holds ``caxton.yaml`` or the agents directory): agent
    files under the agents directory are validated, and their identities are
    compared with every other agent file there (read from the cache, or just
    their ``name``); files outside the agents directory, README.md and hidden
    files are skipped silently; another file inside it is ``CX106``. A
    ``.wasm`` file brings in the agents that use it; ``caxton.yaml`` is validated
    as project settings. Outside a project, agent files are validated as given.
    """
    groups: dict[Path, _Group] = {}
    for raw in paths:
        target = Path(os.path.abspath(raw))
        if not target.is_file():
            raise InvalidInput(f"{raw} is not a file", hint="pass agent files (.md, .toml), .wasm files or directories")
        root = find_root(target.parent)
        groups.setdefault(root, _Group(root)).add(_rel(target, root))
    states = [group.load(options) for group in groups.values()]
    return _merge(states, source=f"{len(list(paths))} file(s)")


class _Group:
    """The files of one root given to ``load_files``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[str] = []
        self.modules: set[str] = set()
        self.project = False

    def add(self, rel: str) -> None:
        if rel.endswith(".wasm"):
            self.modules.add(rel)
        elif rel == PROJECT_FILE:
            self.project = True
        else:
            self.files.append(rel)

    def load(self, options: Options) -> DesiredState:
        tree = FsTree(self.root)
        store = _store(self.root, options)
        agents_dir, found = _project(tree, "", store)
        if not self.project:
            found = []
        in_project = tree.kind(PROJECT_FILE) == "file" or tree.kind(agents_dir) == "dir"
        everything = tree.agent_files(agents_dir) if in_project and tree.kind(agents_dir) == "dir" else []
        chosen, other = _select(self.files, agents_dir if in_project else None)
        wanted = sorted(set(chosen) | (set(everything) if self.modules else set()))
        results = _results(tree, wanted, store, options.jobs)
        keep = set(chosen) | {r.path for r in results if r.agent is not None and r.agent.module_path in self.modules}
        validated = set(wanted)
        rest = [tree.read_agent(p) for p in everything if p not in validated]
        identities = [store.get(item, tree.read_module) or _identity(item) for item in rest]
        result = combine([r for r in results if r.path in keep],
                         [*(r for r in results if r.path not in keep), *identities])
        store.save()
        found += result.diagnostics
        found += [diagnostic("CX106", rel, "not an agent file",
                             hint="agent files end in .md (YAML frontmatter) or .toml") for rel in other]
        return _state(self.root, result.agents, found, source=str(self.root), git_commit=head_commit(self.root))


def _select(files: list[str], agents_dir: str | None) -> tuple[list[str], list[str]]:
    """The given files to validate, and those to flag as not agent files.

    ``agents_dir`` None (not a project): agent files as given. Else what
    ``load`` would read there; other files inside it are flagged, files outside
    it, README.md and hidden files skipped.
    """
    chosen: list[str] = []
    other: list[str] = []
    for rel in files:
        name = posixpath.basename(rel)
        if agents_dir is None:
            if is_agent_name(name):
                chosen.append(rel)
            elif name.lower() != "readme.md":
                other.append(rel)
            continue
        outside = bool(agents_dir) and not rel.startswith(agents_dir + "/")
        below = rel[len(agents_dir) + 1:] if agents_dir else rel
        if outside or any(part.startswith(".") for part in below.split("/")):
            continue
        if is_agent_name(name):
            chosen.append(rel)
        elif not name.lower().endswith(AGENT_SUFFIXES):
            other.append(rel)
    return chosen, other


def _identity(item: AgentFile) -> FileResult:
    from caxton.validation import pipeline

    return pipeline.identity(item)


def _rel(target: Path, root: Path) -> str:
    rel = target.relative_to(root).as_posix()
    return "" if rel == "." else rel


def _store(root: Path, options: Options) -> ValidationCache:
    return ValidationCache.for_root(root) if options.cache else ValidationCache(None)


def _project(tree: Tree, directory: str, store: ValidationCache) -> tuple[str, list[Diagnostic]]:
    """Validate caxton.yaml in ``directory``; return the agents directory it names."""
    path = posixpath.join(directory, PROJECT_FILE) if directory else PROJECT_FILE
    agents_dir = posixpath.join(directory, DEFAULT_AGENTS_DIR) if directory else DEFAULT_AGENTS_DIR
    if tree.kind(path) != "file":
        return agents_dir, []
    item = tree.read_agent(path)
    content = item.content
    if content is None:
        return agents_dir, [diagnostic(item.code, path, f"cannot read caxton.yaml: {item.error}")]
    cached = store.get_project(path, content)
    if cached is None:
        from caxton.validation import pipeline

        config, problems = pipeline.validate_project(path, content)
        cached = (config.agents_dir if config is not None else None), problems
        store.put_project(path, content, *cached)
    configured, found = cached[0], list(cached[1])
    if configured is None:
        return agents_dir, found
    chosen = posixpath.normpath(posixpath.join(directory, configured))
    if chosen == ".." or chosen.startswith(("../", "/")) or os.path.isabs(configured):
        found.append(diagnostic("CX402", path, f"agents_dir {configured!r} points outside the repository root",
                                hint="use a directory inside the repository, e.g. agents"))
        return agents_dir, found
    return ("" if chosen == "." else chosen), found


def _agents_dir(tree: Tree, rel: str, store: ValidationCache) -> tuple[str, list[Diagnostic]]:
    """PATH is a project directory (caxton.yaml or agents/ inside) or the agents directory itself."""
    project_file = posixpath.join(rel, PROJECT_FILE) if rel else PROJECT_FILE
    agents = posixpath.join(rel, DEFAULT_AGENTS_DIR) if rel else DEFAULT_AGENTS_DIR
    if tree.kind(project_file) == "file" or tree.kind(agents) == "dir":
        return _project(tree, rel, store)
    parent_found = _project(tree, "", store)[1] if rel else []
    return rel, parent_found


def _load_tree(
    tree: Tree, root: Path, rel: str, options: Options, *, source: str, git_commit: str | None
) -> DesiredState:
    store = _store(root, options)
    agents_dir, found = _agents_dir(tree, rel, store)
    files = tree.agent_files(agents_dir) if tree.kind(agents_dir) == "dir" else []
    if not files:
        shown = agents_dir or "."
        found.append(diagnostic("CX107", shown, f"no agent files (*.md, *.toml) in {shown}"))
    result = _validate(tree, files, store, options.jobs)
    store.save()
    return _state(root, result.agents, [*found, *result.diagnostics], source=source, git_commit=git_commit)


def _validate(tree: Tree, paths: Sequence[str], store: ValidationCache, jobs: int) -> ValidationResult:
    return combine(_results(tree, paths, store, jobs))


def _results(tree: Tree, paths: Sequence[str], store: ValidationCache, jobs: int) -> list[FileResult]:
    """Every file's result: from the cache when it still holds, else validated (in workers if many)."""
    items = [tree.read_agent(p) for p in paths]
    if not store.enabled and jobs <= 1:
        from caxton.validation import pipeline

        return [pipeline.validate_file(item, tree.read_module) for item in items]
    from caxton.desired import workers

    results: list[FileResult] = []
    misses: list[AgentFile] = []
    for item in items:
        hit = store.get(item, tree.read_module)
        if hit is None:
            misses.append(item)
        else:
            results.append(hit)
    jobs = jobs if isinstance(tree, FsTree) else 1  # git trees hold open pipes: never fork them
    for item, (result, entry) in zip(misses, workers.validate(misses, tree.read_module, jobs), strict=True):
        results.append(result)
        if store.enabled:
            store.put(item, entry if entry is not None else to_entry(result))
    return results


def _load_git(target: Path, ref: str, options: Options) -> DesiredState:
    import git
    from gitdb.exc import ODBError

    try:
        repo = git.Repo(target if target.is_dir() else target.parent, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise GitError(f"{target} is not inside a git repository", hint="--ref needs a git work tree") from error
    try:
        commit = repo.commit(ref)
    except (ValueError, git.GitError, ODBError, LookupError) as error:
        raise GitError(f"unknown git revision {ref!r}", hint="use a branch, a tag, a commit or HEAD~N") from error
    top = Path(str(repo.working_tree_dir)).resolve()
    rel = _rel(target.resolve(), top)
    tree = GitTree(commit)
    kind = tree.kind(rel)
    if kind is None:
        raise InvalidInput(f"{rel or '.'} does not exist at {ref} ({commit.hexsha[:12]})",
                           hint="check the path and the revision (git ls-tree REF PATH)")
    source = f"{target}@{ref}"
    if kind == "file":
        store = _store(top, options)
        result = _validate(tree, [rel], store, options.jobs)
        store.save()
        return _state(top, result.agents, list(result.diagnostics), source=source, git_commit=commit.hexsha)
    return _load_tree(tree, top, rel, options, source=source, git_commit=commit.hexsha)


def _state(
    root: Path, agents: Sequence[ValidatedAgent], found: Sequence[Diagnostic], *, source: str,
    git_commit: str | None,
) -> DesiredState:
    desired = sorted(agents, key=lambda a: a.id)
    return DesiredState(
        root=str(root),
        agents=tuple(desired),
        diagnostics=tuple(sorted(found, key=Diagnostic.sort_key)),
        digest=state_digest((a.id, a.digest) for a in desired),
        git_commit=git_commit,
        source=source,
    )


def _merge(states: list[DesiredState], *, source: str) -> DesiredState:
    if len(states) == 1:
        only = states[0]
        return DesiredState(only.root, only.agents, only.diagnostics, only.digest, only.git_commit, source)
    common = Path(os.path.commonpath([s.root for s in states])) if states else Path.cwd()
    agents: list[DesiredAgent] = []
    found: list[Diagnostic] = []
    for state in states:
        prefix = Path(state.root).relative_to(common).as_posix()
        agents += [dataclasses.replace(a, file=_join(prefix, a.file)) for a in state.agents]
        found += [d.model_copy(update={"file": _join(prefix, d.file)}) for d in state.diagnostics]
    agents.sort(key=lambda a: a.id)
    return DesiredState(str(common), tuple(agents), tuple(sorted(found, key=Diagnostic.sort_key)),
                        state_digest((a.id, a.digest) for a in agents), head_commit(common), source)


def _join(prefix: str, file: str) -> str:
    return file if prefix in ("", ".") else posixpath.join(prefix, file)
