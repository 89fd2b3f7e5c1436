"""What the template sandbox refuses, found in the parsed tree before anything runs (diagnostic CX309).

``unsafe_constructs`` walks the tree ``env.parse()`` returns (never compiled,
so never constant-folded: ``{{ 10**(10**7) }}`` is only looked at) and reports:

- escapes: attribute or item access to a name beginning with ``_``
  (``''.__class__``, ``x['__class__']``), the ``attr`` filter (or the
  ``attribute`` of map, sort, selectattr...) with such a name, attributes
  known to reach interpreter internals (``mro``, ``func_globals``,
  ``gi_frame``, ``f_globals``..., jinja2.sandbox's unsafe lists), names of
  modules and builtins (``os``, ``__builtins__``...), and calls of the
  methods that change a list or mapping (the immutable sandbox refuses them);
- burners: ``range`` with a literal bound over the sandbox's ``MAX_RANGE``,
  repetition (``*``) of a text or list by a large factor or by a factor that
  is not a small literal, ``**`` whose result would be huge or whose exponent
  is not a small literal, and ``%`` formatting with a huge width.

Used by ``caxton validate`` (``caxton.rules.templates``) and by the
engine at deploy, so both refuse the same templates with the same message.
The runtime (``caxton.llm.templating``) still bounds what slips through
(sizes computed at run time) by output size and render time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes

from caxton.rules.template_names import MUTATING_METHODS, UNSAFE_ATTRIBUTES, UNSAFE_NAMES

#: The sandbox's own range limit (jinja2.sandbox.MAX_RANGE).
MAX_RANGE = 100_000
#: Longest text or list a literal repetition may build.
MAX_LITERAL_SIZE = 100_000
#: Largest literal factor a value of unknown size may be repeated by.
MAX_FACTOR = 1_000
#: Largest result of ``**`` with literal operands, in bits, and largest exponent otherwise.
MAX_POWER_BITS = 4_096
MAX_EXPONENT = 64
#: Largest width or precision in a ``%`` format.
MAX_FORMAT_WIDTH = 10_000

#: Filters taking an attribute name: the positional index of it (the ``attribute`` keyword counts too).
ATTRIBUTE_FILTERS = {"attr": 0, "selectattr": 0, "rejectattr": 0, "groupby": 0, "sum": 0, "sort": 2, "unique": 1,
                     "min": 1, "max": 1, "map": -1}
#: Variables whose values are texts or lists (a repetition of them grows with the message).
SIZED_VARIABLES = frozenset({"request", "memory_context", "history", "conversation_id"})

_FORMAT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


@dataclass(frozen=True)
class Unsafe:
    """One refused construct: its 1-based line in the template and the text to point at on that line."""

    line: int
    message: str
    needle: str


def unsafe_constructs(tree: nodes.Template) -> list[Unsafe]:
    """Every construct of ``tree`` the sandbox would refuse or that could burn the engine, in tree order.

    A module or builtin name the template assigns itself (``{% for input in ... %}``) is its own variable.
    """
    checked: list[nodes.Node] = []
    assigned: set[str] = set()
    for node in tree.find_all(_CHECKED):  # one walk of the tree
        if isinstance(node, nodes.Name) and node.ctx != "load":
            assigned.add(node.name)
        elif isinstance(node, (nodes.Macro, nodes.CallBlock)):
            assigned.update(arg.name for arg in node.args)
        checked.append(node)
    return [found for node in checked for found in _check(node, assigned)]


_CHECKED = (nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Filter, nodes.Call, nodes.Mul, nodes.Pow, nodes.Mod,
            nodes.Macro, nodes.CallBlock)


def _check(node: nodes.Node, assigned: set[str]) -> Iterator[Unsafe]:
    if isinstance(node, nodes.Getattr):
        yield from _name(node.lineno, node.attr, f"attribute {node.attr!r}")
        if node.attr in MUTATING_METHODS:
            yield Unsafe(node.lineno, f"uses {node.attr!r}: templates cannot change their variables (the sandbox "
                         "refuses it)", node.attr)
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        yield from _name(node.lineno, node.arg.value, f"item {node.arg.value!r}")
    elif isinstance(node, nodes.Name) and (node.name.startswith("_") or node.name in UNSAFE_NAMES - assigned):
        yield Unsafe(node.lineno, f"uses {node.name!r}: templates have no access to modules, builtins or "
                     "internal names", node.name)
    elif isinstance(node, nodes.Filter) and node.name in ATTRIBUTE_FILTERS:
        yield from _attribute_filter(node)
    elif isinstance(node, nodes.Call):
        yield from _call(node)
    elif isinstance(node, nodes.Mul):
        yield from _repetition(node)
    elif isinstance(node, nodes.Pow):
        yield from _power(node)
    elif isinstance(node, nodes.Mod) and isinstance(node.left, nodes.Const) and isinstance(node.left.value, str):
        yield from _format(node.lineno, node.left.value)


def _name(line: int, name: str, what: str) -> Iterator[Unsafe]:
    if name.startswith("_"):
        yield Unsafe(line, f"{what}: names beginning with '_' are Python internals the sandbox refuses", name)
    elif name in UNSAFE_ATTRIBUTES:
        yield Unsafe(line, f"{what} reaches interpreter internals; the sandbox refuses it", name)


def _attribute_filter(node: nodes.Filter) -> Iterator[Unsafe]:
    index = ATTRIBUTE_FILTERS[node.name]
    given = [kw.value for kw in node.kwargs if kw.key == "attribute"]
    if 0 <= index < len(node.args):
        given.append(node.args[index])
    for value in given:
        if isinstance(value, nodes.Const) and isinstance(value.value, str):
            for part in value.value.split("."):
                yield from _name(node.lineno, part, f"{node.name} filter on attribute {part!r}")


def _call(node: nodes.Call) -> Iterator[Unsafe]:
    callee = node.node
    if isinstance(callee, nodes.Name) and callee.name == "range":
        for arg in node.args:
            bound = _number(arg)
            if bound is _HUGE or (isinstance(bound, (int, float)) and abs(bound) > MAX_RANGE):
                yield Unsafe(node.lineno, f"range over more than {MAX_RANGE:,} numbers", "range")
                return


def _repetition(node: nodes.Mul) -> Iterator[Unsafe]:
    for seq, factor in ((node.left, node.right), (node.right, node.left)):
        size = _literal_size(seq)
        sized = size is not None or (isinstance(seq, nodes.Name) and seq.name in SIZED_VARIABLES)
        if not sized:
            continue
        times = _number(factor)
        if times is _HUGE or not isinstance(times, int):
            yield Unsafe(node.lineno, "repeats a text or list by a factor that is not a small literal number", "*")
        elif size is not None and size * times > MAX_LITERAL_SIZE:
            yield Unsafe(node.lineno, f"repetition builds {size * times:,} items (limit {MAX_LITERAL_SIZE:,})", "*")
        elif size is None and times > MAX_FACTOR:
            yield Unsafe(node.lineno, f"repeats a value of unknown size {times:,} times (limit {MAX_FACTOR:,})", "*")
        return
    if _number(node) is _HUGE:
        yield Unsafe(node.lineno, "multiplies numbers into a huge number", "*")


def _power(node: nodes.Pow) -> Iterator[Unsafe]:
    exponent = _number(node.right)
    if not isinstance(exponent, (int, float)) or exponent is _HUGE:
        yield Unsafe(node.lineno, "raises to a power that is not a small literal number", "**")
    elif exponent > MAX_EXPONENT and (_number(node.left) is None or _number(node) is _HUGE):
        yield Unsafe(node.lineno, f"raises to the power {exponent:,}: the result would be huge", "**")
    elif _number(node) is _HUGE:
        yield Unsafe(node.lineno, f"the power is larger than {MAX_POWER_BITS:,} bits: too large to compute", "**")


def _format(line: int, text: str) -> Iterator[Unsafe]:
    if format_too_wide(text):
        yield Unsafe(line, f"'%' format with a width or precision over {MAX_FORMAT_WIDTH:,} (or given by '*')", "%")


def format_too_wide(text: str) -> bool:
    """True when a ``%`` format in ``text`` has a width or precision over MAX_FORMAT_WIDTH, or a ``*`` one."""
    for match in _FORMAT_WIDTH.finditer(text):
        for width in match.groups():
            if width == "*" or (width is not None and (len(width) > 9 or int(width) > MAX_FORMAT_WIDTH)):
                return True
    return False


class _Huge:
    """A literal expression whose value is too large to compute."""


_HUGE: Any = _Huge()


def _number(node: nodes.Node) -> Any:
    """The value of a literal arithmetic expression (bounded work), _HUGE when too large, else None."""
    if isinstance(node, nodes.Const):
        value = node.value
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(node, (nodes.Neg, nodes.Pos)):
        inner = _number(node.node)
        return inner if inner is None or inner is _HUGE else (-inner if isinstance(node, nodes.Neg) else inner)
    if isinstance(node, (nodes.Add, nodes.Sub, nodes.Mul, nodes.Pow)):
        left, right = _number(node.left), _number(node.right)
        if left is None or right is None:
            return None
        if left is _HUGE or right is _HUGE:
            return _HUGE
        try:
            return _arithmetic(node, left, right)
        except (ArithmeticError, ValueError):
            return _HUGE
    return None


def _arithmetic(node: nodes.Node, left: Any, right: Any) -> Any:
    if isinstance(node, nodes.Add):
        return left + right
    if isinstance(node, nodes.Sub):
        return left - right
    if isinstance(node, nodes.Mul):
        bits = _bits(left) + _bits(right)
        return _HUGE if bits > MAX_POWER_BITS else left * right
    if right < 0 or abs(left) <= 1:
        return left ** right if left != 0 or right >= 0 else None
    if right > MAX_POWER_BITS or _bits(left) * right > MAX_POWER_BITS:
        return _HUGE
    return left ** right


def _bits(value: Any) -> int:
    return int(abs(value)).bit_length() if isinstance(value, int) else 64


def _literal_size(node: nodes.Node) -> int | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return max(len(node.value), 1)
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return max(len(node.items), 1)
    return None
