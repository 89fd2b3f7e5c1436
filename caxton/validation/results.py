"""What validation yields: agent files in, agents and diagnostics out, and the cross-file step.

Kept apart from the checks themselves (``caxton.validation.pipeline``) and free
of heavy imports (no PyYAML, Jinja2 or agent models), so a run answered from
the validation cache (``caxton.desired.cache``) loads none of them. An agent's
spec model is built on first use: ``caxton validate`` needs only its name,
kind, version and digest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from caxton.spec.diagnostics import Diagnostic
from caxton.spec.identity import agent_id
from caxton.validation import tool_refs
from caxton.validation.documents import Pos, diagnostic

if TYPE_CHECKING:
    from caxton.spec.agent import ConfigAgent, WasmAgent

    Spec = ConfigAgent | WasmAgent

AGENT_SUFFIXES = (".md", ".toml")


@dataclass(frozen=True)
class AgentFile:
    """One agent file: root-relative posix path and its bytes (``None`` when unreadable: then
    ``error`` says why and ``code`` is the diagnostic to report, e.g. CX402 for a symlink out of the root)."""

    path: str
    content: bytes | None
    error: str = ""
    code: str = "CX101"


@dataclass(frozen=True)
class ValidatedAgent:
    """An agent file that parsed into a model (it may still have diagnostics).

    ``digest`` is :func:`caxton.spec.digest.spec_digest` of the spec and module;
    ``load_spec`` returns the model (called once, on first use of :attr:`spec`).
    """

    file: str
    name: str
    kind: str
    version: str
    digest: str
    load_spec: Callable[[], Spec] = field(compare=False, repr=False)
    module_path: str | None = None
    module_bytes: bytes | None = None
    module_sha256: str | None = None
    #: The names under ``tools`` as written, and whether it is a WASM tool (a ``tool:`` section): what the
    #: cross-file tool check reads without building the model.
    tools: tuple[str, ...] = ()
    is_tool: bool = False

    @classmethod
    def of(cls, file: str, spec: Spec, digest: str, module_path: str | None = None,
           module_bytes: bytes | None = None, module_sha256: str | None = None) -> ValidatedAgent:
        """An agent whose model is already built."""
        return cls(file, spec.name, spec.kind, spec.version, digest, lambda: spec,
                   module_path, module_bytes, module_sha256, tuple(spec.tools),
                   getattr(spec, "tool", None) is not None)

    @cached_property
    def spec(self) -> Spec:
        return self.load_spec()

    @property
    def id(self) -> str:
        return agent_id(self.name)


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
    #: The names under ``tools`` as written (also when the file failed its schema check), and where
    #: ``tools[i]`` is written (asked only for a name the cross-file check refuses).
    tools: tuple[str, ...] = ()
    tool_pos: Callable[[int], Pos | None] = lambda _: None


@dataclass(frozen=True)
class ValidationResult:
    agents: tuple[ValidatedAgent, ...]
    diagnostics: tuple[Diagnostic, ...]


def combine(results: Sequence[FileResult], others: Sequence[FileResult] = ()) -> ValidationResult:
    """The cross-file step: every file's diagnostics plus duplicate identities and tool references, sorted.

    Of two files with one identity the first (by path) is kept and the other flagged.
    ``others`` are the files of the same agents directory that were not asked about
    (``caxton validate FILE...``): only their identities count, and a duplicate is
    reported when it involves a file of ``results``.
    """
    asked = {r.path for r in results}
    ordered = sorted([*results, *others], key=lambda r: r.path)
    found = [d for r in results for d in r.diagnostics]
    unique, duplicates = _deduplicate([(r.agent, r.name_pos) for r in ordered if r.agent is not None])
    found += [d for d, pair in duplicates if not asked.isdisjoint(pair)]
    flagged = {pair[0] for _, pair in duplicates}
    found += tool_refs.check([r for r in results if r.path not in flagged], unique)
    agents = (a for a in unique if a.file in asked)
    return ValidationResult(tuple(agents), tuple(sorted(found, key=Diagnostic.sort_key)))


def _deduplicate(
    agents: list[tuple[ValidatedAgent, Callable[[], Pos | None]]]
) -> tuple[list[ValidatedAgent], list[tuple[Diagnostic, tuple[str, str]]]]:
    """The first agent of each identity, and a diagnostic (with the two files) for each later one."""
    first: dict[str, ValidatedAgent] = {}
    found = []
    for agent, name_pos in agents:
        earlier = first.get(agent.id)
        if earlier is None:
            first[agent.id] = agent
            continue
        found.append((diagnostic(
            "CX301", agent.file,
            f"agent {agent.id!r} (name {agent.name!r}) is already defined in {earlier.file}",
            name_pos(),
            hint="names compare case-insensitively in kebab form; rename one agent or delete the duplicate"),
            (agent.file, earlier.file)))
    return list(first.values()), found
