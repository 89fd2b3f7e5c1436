"""The one Jinja2 environment for prompt templates: sandboxed, strict, never constant-folded.

Validation uses it (``check_template``) to check syntax, variables, filters
and what the sandbox would refuse (``caxton.rules.template_safety``:
escapes to Python internals, constructs that burn the engine); the engine
checks the same at deploy and renders with a bounded subclass of the same
environment (``caxton.llm.templating``, options ``ENVIRONMENT_OPTIONS``).
Operators' repositories are code: the sandbox forbids attribute walking to
Python internals. ``optimized=False``: Jinja2's optimizer evaluates constant
expressions at compile time (``{{ 10**(10**7) }}`` would run at deploy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from caxton.rules.template_names import MUTATING_METHODS, UNSAFE_ATTRIBUTES, UNSAFE_NAMES

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Variables a prompt template may use, and what they hold at render time.
TEMPLATE_VARIABLES: dict[str, str] = {
    "request": "the message content sent to the agent (text, or JSON rendered as text)",
    "parameters": "the agent's parameters mapping",
    "memory_context": "entities retrieved from memory for this request ('' when memory is off)",
    "history": "earlier turns of this conversation: a list of {role, content}",
    "conversation_id": "the conversation id, or '' when none was given",
    "agent": "the agent: {name, version, revision}",
}


#: The hint of a refused construct (CX309), in ``caxton validate`` and at deploy.
UNSAFE_HINT = ("templates may read the variables and call filters, not reach Python internals or build huge "
               "values; see docs/validation.md#template-safety")

#: The environment's options, shared by the checker and the engine's renderer.
ENVIRONMENT_OPTIONS: dict[str, Any] = {"autoescape": False, "keep_trailing_newline": True, "optimized": False}


def make_environment() -> ImmutableSandboxedEnvironment:
    """A fresh sandboxed environment; undefined variables raise at render time."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, **ENVIRONMENT_OPTIONS)


@dataclass(frozen=True)
class TemplateProblem:
    """A problem in a prompt template; ``line`` and ``column`` are 1-based within the template."""

    kind: Literal["syntax", "variable", "filter", "unsafe"]
    line: int
    message: str
    name: str | None = None
    column: int = 1


@lru_cache(maxsize=1)
def _checker() -> ImmutableSandboxedEnvironment:
    return make_environment()


_JINJA_MARKERS = ("{{", "{%", "{#")


#: The common cases, checked without importing Jinja2 (~90 ms): ``{{ name }}``, ``{{ name.attr }}``,
#: and ``{% if [not] name %}`` / ``{% elif [not] name %}`` / ``{% else %}`` / ``{% endif %}``.
_SIMPLE_EXPRESSION = re.compile(r"\{\{-?\s*([A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)*\s*-?\}\}")
_WORD = re.compile(r"[A-Za-z_]\w*")
_LONE_STAR = re.compile(r"(?<!\*)\*(?!\*)")
_SIMPLE_TAG = re.compile(r"\{%-?\s*(if|elif|else|endif)\b(?:\s+(?:not\s+)?([A-Za-z_]\w*))?\s*-?%\}")
#: Jinja2's default globals (``env.globals``), known to every template.
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})
#: Words Jinja2 reads as constants or operators, never as variables: such templates go to Jinja2.
_RESERVED = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if",
                       "elif", "else", "endif", "for", "endfor", "recursive", "with", "without", "context"})



def is_refused_word(word: str) -> bool:
    """A name or attribute the sandbox refuses (or that only an escape would look for)."""
    return word.startswith("_") or word in UNSAFE_ATTRIBUTES or word in MUTATING_METHODS or word in UNSAFE_NAMES


def _check_simple(source: str) -> tuple[TemplateProblem, ...] | None:
    """Problems of a template made only of the simple forms above; None when Jinja2 must parse it."""
    rest = _SIMPLE_TAG.sub("", _SIMPLE_EXPRESSION.sub("", source))
    if any(marker in rest for marker in _JINJA_MARKERS):
        return None
    expressions = list(_SIMPLE_EXPRESSION.finditer(source))
    if any(is_refused_word(word) for match in expressions for word in _WORD.findall(match.group(0))):
        return None  # Jinja2's tree says where and why
    names = [(m.group(1), m.start(1)) for m in expressions]
    open_blocks: list[str] = []
    for match in _SIMPLE_TAG.finditer(source):
        tag, name = match.group(1), match.group(2)
        if (name is None) != (tag in ("else", "endif")) or not _nests(open_blocks, tag):
            return None  # a misplaced or malformed tag: Jinja2 words the syntax error
        if name is not None:
            if is_refused_word(name):
                return None
            names.append((name, match.start(2)))
    if open_blocks or any(name in _RESERVED for name, _ in names):
        return None
    known = set(TEMPLATE_VARIABLES) | _JINJA_GLOBALS
    first: dict[str, int] = {}
    for name, offset in sorted(names, key=lambda n: n[1]):
        if name not in known:
            first.setdefault(name, source.count("\n", 0, offset) + 1)
    return tuple(TemplateProblem("variable", line, f"unknown template variable {name!r}", name)
                 for name, line in sorted(first.items(), key=lambda item: (item[1], item[0])))


def _nests(open_blocks: list[str], tag: str) -> bool:
    """Track ``if`` blocks; False when ``tag`` cannot stand where it is."""
    if tag == "if":
        open_blocks.append("if")
        return True
    if not open_blocks or open_blocks[-1] == "else" and tag != "endif":
        return False
    if tag == "endif":
        open_blocks.pop()
    elif tag == "else":
        open_blocks[-1] = "else"
    return True


@lru_cache(maxsize=4096)
def _check_cached(source: str) -> tuple[TemplateProblem, ...]:
    simple = _check_simple(source)
    return simple if simple is not None else check_with_jinja(source)


def check_with_jinja(source: str) -> tuple[TemplateProblem, ...]:
    """The full check: parse with Jinja2 and walk the tree."""
    from jinja2 import TemplateSyntaxError, nodes

    env = _checker()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as error:
        return (TemplateProblem("syntax", error.lineno or 1, error.message or "invalid template syntax"),)
    problems = _unknown_names(env, tree) + _unsafe(source, tree)
    known = set(TEMPLATE_VARIABLES) | set(env.globals)
    loads: dict[str, int] = {}
    stored = {macro.name for macro in tree.find_all(nodes.Macro)}
    defined = _defined_in_scope(tree)
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and id(node) not in defined:
            loads.setdefault(node.name, node.lineno)
        elif node.ctx != "load":
            stored.add(node.name)
    for name in sorted(set(loads) - stored - known - UNSAFE_NAMES):
        if name.startswith("_"):
            continue  # reported as unsafe
        problems.append(TemplateProblem("variable", loads[name], f"unknown template variable {name!r}", name))
    return tuple(sorted(problems, key=lambda p: (p.line, p.column)))


def _defined_in_scope(tree: nodes.Template) -> set[int]:
    """The reads (``Name`` nodes, by id) of names Jinja2 itself defines where they stand: ``loop``
    in a ``for`` body, ``varargs``/``kwargs``/``caller`` in a macro or ``call`` block, ``super``
    in a block, and ``self`` in a template that has blocks."""
    from jinja2 import nodes

    scopes: tuple[tuple[type[nodes.Node] | tuple[type[nodes.Node], ...], frozenset[str]], ...] = (
        (nodes.For, frozenset({"loop"})),
        ((nodes.Macro, nodes.CallBlock), frozenset({"varargs", "kwargs", "caller"})),
        (nodes.Block, frozenset({"super"})),
    )
    defined: set[int] = set()
    for kinds, names in scopes:
        for scope in tree.find_all(kinds):
            for statement in scope.body:  # type: ignore[attr-defined]
                reads = [statement] if isinstance(statement, nodes.Name) else []
                defined.update(id(n) for n in [*reads, *statement.find_all(nodes.Name)] if n.name in names)
    if any(True for _ in tree.find_all(nodes.Block)):
        defined.update(id(n) for n in tree.find_all(nodes.Name) if n.name == "self")
    return defined


def _unsafe(source: str, tree: nodes.Template) -> list[TemplateProblem]:
    """What the sandbox refuses or what burns the engine (``template_safety``), placed at its column."""
    from caxton.rules.template_safety import unsafe_constructs

    lines = source.split("\n")
    problems = []
    for found in unsafe_constructs(tree):
        text = lines[found.line - 1] if 0 < found.line <= len(lines) else ""
        at = _LONE_STAR.search(text) if found.needle == "*" else None
        column = at.start() + 1 if at else text.find(found.needle) + 1
        problems.append(TemplateProblem("unsafe", found.line, found.message, found.needle, column=column or 1))
    return problems


def unsafe_problems(source: str) -> list[TemplateProblem]:
    """Only the refused constructs of a template (the engine's deploy-time check); [] when it does not parse."""
    return [problem for problem in check_template(source) if problem.kind == "unsafe"]


def refuse_unsafe(agent: str, fields: dict[str, str]) -> None:
    """The engine's deploy check: ValidationFailed (CX309, as ``caxton validate`` words it) for any refused construct."""
    from caxton.errors import ValidationFailed

    problems = [
        {"loc": field, "line": problem.line, "column": problem.column, "code": "CX309", "message": problem.message}
        for field, source in fields.items() for problem in unsafe_problems(source)
    ]
    if problems:
        first = problems[0]
        raise ValidationFailed(
            f"agent {agent!r}: {first['loc']}:{first['line']}:{first['column']}: {first['message']} (CX309)"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint=UNSAFE_HINT, details=problems,
        )


def check_template(source: str) -> list[TemplateProblem]:
    """Syntax errors, unknown variables and unknown filters/tests of one template.

    Variables are names read but never assigned in the template (``set``,
    ``for``, ``with``, macro names and parameters assign; ``loop``, ``caller``,
    ``varargs``, ``kwargs``, ``super`` and ``self`` are known where Jinja2
    defines them) that the runtime does not provide.
    """
    if not any(marker in source for marker in _JINJA_MARKERS):
        return []
    return list(_check_cached(source))


def _unknown_names(env: ImmutableSandboxedEnvironment, tree: nodes.Template) -> list[TemplateProblem]:
    from jinja2 import nodes

    problems: list[TemplateProblem] = []
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        table = env.filters if isinstance(node, nodes.Filter) else env.tests
        what = "filter" if isinstance(node, nodes.Filter) else "test"
        if node.name not in table:
            problems.append(TemplateProblem("filter", node.lineno, f"unknown template {what} {node.name!r}", node.name))
    return problems


def known_filters() -> list[str]:
    env = _checker()
    return sorted({*env.filters, *env.tests})
