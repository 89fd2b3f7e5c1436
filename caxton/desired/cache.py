"""The validation cache: per-file results kept on disk between CLI runs.

Validating an agent file costs a YAML (or TOML) parse, a pydantic validation
and a Jinja2 parse of its templates; a WASM agent adds a wasmtime compile.
``caxton validate`` (a pre-commit hook) and ``caxton plan`` run again and again
over mostly unchanged files, so each file's outcome is stored under a key made
of its path, its bytes and a fingerprint of the validator itself (caxton's
spec and validation code, the parsing libraries). A WASM agent's entry also
records what its module lookup found (the module's sha256, or the problem);
the module is read again on every run and the entry is used only when that
still matches. A hit rebuilds exactly what a fresh validation returns.

Where: ``$CAXTON_CACHE_DIR``, else ``$XDG_CACHE_HOME/caxton``, else
``~/.cache/caxton`` (outside the repository, so a watched work tree stays
clean); one JSON file per repository root. ``CAXTON_NO_CACHE=1`` (or
``caxton validate --no-cache``) turns it off. A cache that cannot be read or
written is ignored: it never changes a result and never fails a command.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton.spec.diagnostics import Diagnostic
from caxton.validation import modules
from caxton.validation.results import AgentFile, FileResult, ValidatedAgent

FORMAT = 1
#: Entries kept beyond those used by the current run (old files, other branches).
SPARE_ENTRIES = 5000
_LIBRARIES = ("yaml", "jinja2", "pydantic", "pydantic_core", "wasmtime")
_CODE = ("spec", "validation")

if TYPE_CHECKING:
    from caxton.spec.agent import ConfigAgent, WasmAgent
    from caxton.validation.documents import Pos

    Spec = ConfigAgent | WasmAgent

Entry = dict[str, Any]


def cache_dir() -> Path | None:
    """The cache directory, or ``None`` when caching is turned off."""
    if os.environ.get("CAXTON_NO_CACHE", "") not in ("", "0"):
        return None
    explicit = os.environ.get("CAXTON_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "caxton"


def fingerprint() -> str:
    """What the validator is: caxton's spec/validation sources and the parsing libraries (by stat)."""
    parts = [f"format={FORMAT}"]
    package = Path(__file__).resolve().parent.parent
    for sub in _CODE:
        for source in sorted((package / sub).glob("*.py")):
            stat = source.stat()
            parts.append(f"{sub}/{source.name}:{stat.st_size}:{stat.st_mtime_ns}")
    for library in _LIBRARIES:
        spec = importlib.util.find_spec(library)
        origin = spec.origin if spec is not None else None
        if origin and os.path.exists(origin):
            stat = os.stat(origin)
            parts.append(f"{library}:{origin}:{stat.st_size}:{stat.st_mtime_ns}")
        else:
            parts.append(f"{library}:absent")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class ValidationCache:
    """The entries of one repository root; :meth:`save` writes them back when they changed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._salt = fingerprint() if path is not None else ""
        self._entries: dict[str, Entry] = _read(path) if path is not None else {}
        self._used: set[str] = set()
        self._dirty = False

    @classmethod
    def for_root(cls, root: Path | str) -> ValidationCache:
        """The cache of a repository root in :func:`cache_dir` (a disabled one when caching is off)."""
        directory = cache_dir()
        if directory is None:
            return cls(None)
        name = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:24]
        return cls(directory / "validate" / f"{name}.json")

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def key(self, item: AgentFile) -> str | None:
        if self.path is None or item.content is None:
            return None
        digest = hashlib.sha256(self._salt.encode())
        digest.update(item.path.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(item.content)
        return digest.hexdigest()

    def get(self, item: AgentFile, read_module: modules.ModuleReader) -> FileResult | None:
        """The stored result of ``item``, if it still holds (its module unchanged)."""
        found = self._lookup(item)
        if found is None:
            return None
        key, entry = found
        try:
            result = from_entry(item, entry, read_module)
        except (KeyError, TypeError, ValueError):  # an entry of another shape: validate afresh
            return None
        if result is not None:
            self._used.add(key)
        return result

    def put(self, item: AgentFile, entry: Entry) -> None:
        """Keep ``entry`` for ``item`` (not when its module could not be read: that is rechecked each run)."""
        module = (entry.get("agent") or {}).get("module")
        if module is None or module["found"] is not None:
            self._keep(item, entry)

    def get_project(self, path: str, content: bytes) -> tuple[str | None, list[Diagnostic]] | None:
        """The stored outcome of validating ``caxton.yaml``: its ``agents_dir`` (None: unusable) and diagnostics."""
        found = self._lookup(AgentFile(path, content))
        if found is None or "project" not in found[1]:
            return None
        key, entry = found
        try:
            project = entry["project"]
            agents_dir = project["agents_dir"]
            problems = [Diagnostic.model_validate(d) for d in project["diagnostics"]]
        except (KeyError, TypeError, ValueError):
            return None
        if agents_dir is not None and not isinstance(agents_dir, str):
            return None
        self._used.add(key)
        return agents_dir, problems

    def put_project(self, path: str, content: bytes, agents_dir: str | None, found: list[Diagnostic]) -> None:
        diagnostics = [d.model_dump(mode="json") for d in found]
        self._keep(AgentFile(path, content), {"project": {"agents_dir": agents_dir, "diagnostics": diagnostics}})

    def _lookup(self, item: AgentFile) -> tuple[str, Entry] | None:
        """The key of ``item`` and its stored entry, when there is one."""
        key = self.key(item)
        entry = self._entries.get(key) if key is not None else None
        return (key, entry) if key is not None and isinstance(entry, dict) else None

    def _keep(self, item: AgentFile, entry: Entry) -> None:
        key = self.key(item)
        if key is not None:
            self._entries[key] = entry
            self._used.add(key)
            self._dirty = True

    def save(self) -> None:
        """Write the entries (atomically) when this run added any; old unused ones are pruned."""
        if self.path is None or not self._dirty:
            return
        spare = [k for k in self._entries if k not in self._used][-SPARE_ENTRIES:]
        kept = {k: self._entries[k] for k in (*spare, *self._used) if k in self._entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".validate-", suffix=".tmp")
            body = json.dumps(kept, separators=(",", ":")).encode()
            header = json.dumps({"format": FORMAT, "sha256": hashlib.sha256(body).hexdigest()}).encode()
            with os.fdopen(handle, "wb") as out:
                out.write(header + b"\n" + body)
            os.replace(temporary, self.path)
        except OSError:
            return  # a read-only home or a full disk: run without a cache
        self._dirty = False


def _read(path: Path) -> dict[str, Entry]:
    """The entries of a cache file; nothing when it is missing, of another format or damaged."""
    try:
        header, _, body = path.read_bytes().partition(b"\n")
        meta = json.loads(header)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return {}
        if meta.get("sha256") != hashlib.sha256(body).hexdigest():
            return {}
        entries = json.loads(body)
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def to_entry(result: FileResult) -> Entry:
    """A JSON-able form of one file's result (also how worker processes hand results back)."""
    agent = result.agent
    entry: Entry = {"diagnostics": [d.model_dump(mode="json") for d in result.diagnostics], "agent": None,
                    "tools": list(result.tools)}
    if agent is not None:
        entry["agent"] = {
            "kind": agent.spec.kind,
            "spec": agent.spec.model_dump(mode="json", round_trip=True),
            "digest": agent.digest,
            "module": _module_entry(agent),
        }
    return entry


def _module_entry(agent: ValidatedAgent) -> Entry | None:
    from caxton.spec.agent import WasmAgent

    if not isinstance(agent.spec, WasmAgent) or agent.module_path is None:
        return None
    limit = agent.spec.resource_limits.max_module_size
    return {"path": agent.module_path, "max_size": limit, "found": agent.module_sha256}


def from_entry(item: AgentFile, entry: Entry, read_module: modules.ModuleReader) -> FileResult | None:
    """Rebuild a result; ``None`` when the agent's module is no longer what the entry saw."""
    diagnostics = tuple(Diagnostic.model_validate(d) for d in entry["diagnostics"])
    tools = tuple(str(t) for t in entry.get("tools") or ())

    def tool_pos(index: int) -> Pos | None:
        return _position(item, ("tools", index))

    stored = entry["agent"]
    if stored is None:
        return FileResult(item.path, None, diagnostics, tools=tools, tool_pos=tool_pos)
    module = stored["module"]
    module_bytes = module_sha256 = module_path = None
    if module is not None:
        lookup = read_module(module["path"], module["max_size"])
        module_sha256 = hashlib.sha256(lookup.data).hexdigest() if lookup.data is not None else None
        if module_sha256 != module["found"]:
            return None
        module_bytes, module_path = lookup.data, lookup.path
    spec = stored["spec"]
    header = (str(spec["name"]), str(stored["kind"]), str(spec["version"]))
    listed = spec.get("tools")
    agent = ValidatedAgent(item.path, *header, str(stored["digest"]), lambda: _build_spec(stored["kind"], spec),
                           module_path, module_bytes, module_sha256,
                           tuple(str(t) for t in listed) if isinstance(listed, list) else (),
                           stored["kind"] == "wasm" and spec.get("tool") is not None)
    return FileResult(item.path, agent, diagnostics, lambda: _name_position(item), tools, tool_pos)


def _build_spec(kind: str, data: dict[str, Any]) -> Spec:
    from caxton.spec.agent import model_for_kind

    model = model_for_kind(kind)
    if model is None:
        raise ValueError(f"cache entry of unknown kind {kind!r}")
    return model.model_validate(data)


def _name_position(item: AgentFile) -> Pos | None:
    return _position(item, ("name",))


def _position(item: AgentFile, path: tuple[str | int, ...]) -> Pos | None:
    from caxton.validation.pipeline import value_position

    return value_position(item, path)
