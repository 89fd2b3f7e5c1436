"""The validation pipeline: agent file bytes (and module bytes) in, agents and diagnostics out.

Each file goes through decode -> parse (YAML frontmatter or TOML) -> kind ->
schema -> semantic checks -> module checks (WASM agents); then identities are
compared across files. Every problem in every file is reported in one run.
Called by ``caxton.desired.loader``; pure (module bytes come from an injected
``ModuleReader``). The loader may answer some files from its cache
(``caxton.desired.cache``) and validate the rest in worker processes: the
per-file step (:func:`validate_file`) is here, the cross-file step and the
result types are in ``caxton.validation.results``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from caxton.rules.suggest import did_you_mean
from caxton.spec.agent import KINDS, ConfigAgent, WasmAgent, model_for_kind
from caxton.spec.diagnostics import Diagnostic
from caxton.spec.digest import spec_digest
from caxton.spec.identity import is_valid_name
from caxton.validation import agent_checks, documents, frontmatter, modules, schema, wasm
from caxton.validation.documents import Document, Pos, diagnostic
from caxton.validation.results import AgentFile, FileResult, ValidatedAgent, ValidationResult, combine

if TYPE_CHECKING:
    from caxton.spec.project import ProjectConfig


def validate_agents(files: Sequence[AgentFile], read_module: modules.ModuleReader) -> ValidationResult:
    """Validate every file; duplicates keep the first file (in path order) and flag the others."""
    return combine([validate_file(item, read_module) for item in files])


def validate_file(item: AgentFile, read_module: modules.ModuleReader) -> FileResult:
    """One agent file through every single-file check."""
    doc, agent, found = _validate_file(item, read_module)
    if doc is None or doc.data is None:
        return FileResult(item.path, agent, tuple(found))
    tools = tuple(agent_checks.strings(doc.data.get("tools")))
    return FileResult(item.path, agent, tuple(found), lambda: doc.value_pos(("name",)), tools,
                      lambda index: doc.value_pos(("tools", index)))


def identity(item: AgentFile) -> FileResult:
    """Only the identity a file claims (its ``name``), unchecked: for the files of the agents
    directory that ``caxton validate FILE...`` was not given, to find duplicates cheaply."""
    text, problem = documents.decode(item.path, item.content) if item.content is not None else (None, None)
    doc = _parse(item.path, text) if text is not None and problem is None else None
    data = doc.data if doc is not None else None
    name = data.get("name") if data is not None else None
    if doc is None or data is None or not isinstance(name, str) or not is_valid_name(name):
        return FileResult(item.path, None, ())
    kind = str(data.get("kind", "config"))
    agent = ValidatedAgent(item.path, name, kind, str(data.get("version", "")), "", _unchecked,
                           is_tool=kind == "wasm" and isinstance(data.get("tool"), dict))
    return FileResult(item.path, agent, (), lambda: doc.value_pos(("name",)))


def _unchecked() -> ConfigAgent | WasmAgent:
    raise RuntimeError("an identity-only result has no spec")


def value_position(item: AgentFile, path: tuple[str | int, ...]) -> Pos | None:
    """Where the value at ``path`` is written in an agent file (re-parses it; for files answered from a cache)."""
    text, _ = documents.decode(item.path, item.content or b"")
    doc = _parse(item.path, text) if text is not None else None
    return doc.value_pos(path) if doc is not None and doc.data is not None else None


def _validate_file(
    item: AgentFile, read_module: modules.ModuleReader
) -> tuple[Document | None, ValidatedAgent | None, list[Diagnostic]]:
    if item.content is None:
        return None, None, [diagnostic(item.code, item.path, f"cannot read file: {item.error}",
                                       hint=_UNREADABLE_HINTS.get(item.code))]
    text, problem = documents.decode(item.path, item.content)
    if problem is not None or text is None:
        return None, None, [problem] if problem else []
    doc = _parse(item.path, text)
    if doc is None:
        return None, None, [diagnostic("CX106", item.path, "not an agent file",
                                       hint="agent files end in .md (YAML frontmatter) or .toml")]
    if doc.data is None:
        return doc, None, doc.diagnostics
    spec, found = _spec(doc, doc.data)
    found += agent_checks.check_agent(doc, doc.data)
    if spec is None:
        return doc, None, found
    if isinstance(spec, WasmAgent):
        return _with_module(doc, spec, found, read_module)
    return doc, ValidatedAgent.of(item.path, spec, spec_digest(spec.model_dump(mode="json"))), found


_UNREADABLE_HINTS = {
    "CX108": "only regular files are read: remove it or move it out of the agents directory",
    "CX109": "point the symlink at a real file, or remove it",
    "CX402": "copy the file into the repository instead of linking to it",
}


def _parse(path: str, text: str) -> Document | None:
    if path.endswith(".md"):
        return frontmatter.parse_markdown(path, text)
    if path.endswith(".toml"):
        return documents.parse_toml(path, text)
    return None


def _spec(doc: Document, data: dict[str, Any]) -> tuple[ConfigAgent | WasmAgent | None, list[Diagnostic]]:
    found = list(doc.diagnostics) + agent_checks.deprecated_fields(doc, data)
    kind = data.get("kind", "config")
    model = model_for_kind(kind) if isinstance(kind, str) else None
    if model is None:
        hint = did_you_mean(str(kind), KINDS, fallback="kind is 'config' (the default) or 'wasm'")
        found.append(diagnostic("CX208", doc.file, f"kind {kind!r} is not an agent kind",
                                doc.value_pos(("kind",)), hint=hint))
        return None, found
    spec, problems = schema.validate_model(doc, model, data)
    return spec, found + problems


def _with_module(
    doc: Document, spec: WasmAgent, found: list[Diagnostic], read_module: modules.ModuleReader
) -> tuple[Document, ValidatedAgent, list[Diagnostic]]:
    path = modules.resolve(doc.file, spec.module)
    if path is None:
        lookup = modules.ModuleLookup(None, problem="escape")
    else:
        lookup = read_module(path, spec.resource_limits.max_module_size)
    problems, module_sha256 = wasm.check_module(doc, spec, lookup)
    digest = spec_digest(spec.model_dump(mode="json"), module_sha256)
    agent = ValidatedAgent.of(doc.file, spec, digest, lookup.path, lookup.data, module_sha256)
    return doc, agent, found + problems


def validate_project(path: str, content: bytes) -> tuple[ProjectConfig | None, list[Diagnostic]]:
    """``caxton.yaml``: the same syntax and schema diagnostics as agent files."""
    from caxton.spec.project import ProjectConfig  # only when a caxton.yaml exists

    text, problem = documents.decode(path, content)
    if problem is not None or text is None:
        if problem is not None and problem.code == "CX102":
            return ProjectConfig(), []
        return None, [problem] if problem else []
    doc = frontmatter.parse_yaml_file(path, text)
    if doc.data is None:
        return None, doc.diagnostics
    config, found = schema.validate_model(doc, ProjectConfig, doc.data)
    return config, doc.diagnostics + found
