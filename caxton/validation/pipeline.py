"""The validation pipeline: agent file bytes (and module bytes) in, agents and diagnostics out.

Each file goes through decode -> parse (YAML frontmatter or TOML) -> kind ->
schema -> semantic checks -> module checks (WASM agents); then identities are
compared across files. Every problem in every file is reported in one run.
Called by ``caxton.desired.loader``; pure (module bytes come from an injected
``ModuleReader``). The loader may answer some files from its cache
(``caxton.desired.cache``) and validate the rest in worker processes: the
per-file step (:func:`validate_file`) and the cross-file step (:func:`combine`)
are therefore separate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caxton.spec.agent import KINDS, ConfigAgent, WasmAgent, model_for_kind
from caxton.spec.diagnostics import Diagnostic
from caxton.spec.digest import spec_digest
from caxton.validation import agent_checks, documents, modules, schema, wasm
from caxton.validation.documents import Document, Pos, diagnostic
from caxton.validation.suggest import did_you_mean

if TYPE_CHECKING:
    from caxton.spec.project import ProjectConfig

AGENT_SUFFIXES = (".md", ".toml")


@dataclass(frozen=True)
class AgentFile:
    """One agent file: root-relative posix path and its bytes (``None`` when unreadable)."""

    path: str
    content: bytes | None
    error: str = ""
    escaped: bool = False


@dataclass(frozen=True)
class ValidatedAgent:
    """An agent file that parsed into a model (it may still have diagnostics).

    ``digest`` is :func:`caxton.spec.digest.spec_digest` of the spec and module.
    """

    file: str
    spec: ConfigAgent | WasmAgent
    digest: str
    module_path: str | None = None
    module_bytes: bytes | None = None
    module_sha256: str | None = None


@dataclass(frozen=True)
class FileResult:
    """What one agent file yields: its agent (when it parsed into a model) and its diagnostics.

    ``name_pos`` tells where the agent's ``name`` is written; it is asked for
    only when another file claims the same identity (positions cost a re-walk).
    """

    path: str
    agent: ValidatedAgent | None
    diagnostics: tuple[Diagnostic, ...]
    name_pos: Callable[[], Pos | None] = lambda: None


@dataclass(frozen=True)
class ValidationResult:
    agents: tuple[ValidatedAgent, ...]
    diagnostics: tuple[Diagnostic, ...]


def validate_agents(files: Sequence[AgentFile], read_module: modules.ModuleReader) -> ValidationResult:
    """Validate every file; duplicates keep the first file (in path order) and flag the others."""
    return combine([validate_file(item, read_module) for item in files])


def combine(results: Sequence[FileResult]) -> ValidationResult:
    """The cross-file step: every file's diagnostics plus duplicate identities, sorted."""
    ordered = sorted(results, key=lambda r: r.path)
    found = [d for r in ordered for d in r.diagnostics]
    unique, duplicates = _deduplicate([(r.agent, r.name_pos) for r in ordered if r.agent is not None])
    found += duplicates
    return ValidationResult(tuple(unique), tuple(sorted(found, key=Diagnostic.sort_key)))


def validate_file(item: AgentFile, read_module: modules.ModuleReader) -> FileResult:
    """One agent file through every single-file check."""
    doc, agent, found = _validate_file(item, read_module)
    if doc is None or agent is None:
        return FileResult(item.path, agent, tuple(found))
    return FileResult(item.path, agent, tuple(found), lambda: doc.value_pos(("name",)))


def name_position(item: AgentFile) -> Pos | None:
    """Where ``name`` is written in an agent file (re-parses it; for files answered from a cache)."""
    text, _ = documents.decode(item.path, item.content or b"")
    doc = _parse(item.path, text) if text is not None else None
    return doc.value_pos(("name",)) if doc is not None and doc.data is not None else None


def _validate_file(
    item: AgentFile, read_module: modules.ModuleReader
) -> tuple[Document | None, ValidatedAgent | None, list[Diagnostic]]:
    if item.content is None:
        code = "CX402" if item.escaped else "CX101"
        return None, None, [diagnostic(code, item.path, f"cannot read file: {item.error}")]
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
    return doc, ValidatedAgent(item.path, spec, spec_digest(spec.model_dump(mode="json"))), found


def _parse(path: str, text: str) -> Document | None:
    if path.endswith(".md"):
        return documents.parse_markdown(path, text)
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
    agent = ValidatedAgent(doc.file, spec, digest, lookup.path, lookup.data, module_sha256)
    return doc, agent, found + problems


def _deduplicate(
    agents: list[tuple[ValidatedAgent, Callable[[], Pos | None]]]
) -> tuple[list[ValidatedAgent], list[Diagnostic]]:
    first: dict[str, ValidatedAgent] = {}
    found = []
    for agent, name_pos in agents:
        earlier = first.get(agent.spec.id)
        if earlier is None:
            first[agent.spec.id] = agent
            continue
        found.append(diagnostic(
            "CX301", agent.file,
            f"agent {agent.spec.id!r} (name {agent.spec.name!r}) is already defined in {earlier.file}",
            name_pos(),
            hint="names compare case-insensitively in kebab form; rename one agent or delete the duplicate"))
    return list(first.values()), found


def validate_project(path: str, content: bytes) -> tuple[ProjectConfig | None, list[Diagnostic]]:
    """``caxton.yaml``: the same syntax and schema diagnostics as agent files."""
    from caxton.spec.project import ProjectConfig  # only when a caxton.yaml exists

    text, problem = documents.decode(path, content)
    if problem is not None or text is None:
        if problem is not None and problem.code == "CX102":
            return ProjectConfig(), []
        return None, [problem] if problem else []
    doc = documents.parse_yaml_file(path, text)
    if doc.data is None:
        return None, doc.diagnostics
    config, found = schema.validate_model(doc, ProjectConfig, doc.data)
    return config, doc.diagnostics + found
