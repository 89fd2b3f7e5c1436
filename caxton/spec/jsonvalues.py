"""Standard JSON only: the checks every JSON the engine accepts or emits passes.

Python's ``json`` accepts and writes ``NaN``, ``Infinity`` and ``-Infinity``
(not JSON: other clients fail on them), keeps lone UTF-16 surrogates
(``"\\ud800"``: no UTF-8 encoding exists) and recurses until a
``RecursionError`` on deep nesting. This module owns:

- ``json_depth(raw, limit)``: how deep arrays and objects nest (linear, no recursion);
- ``non_finite(raw)``: the first non-standard constant of a JSON text (or JSON lines) and its path;
- ``loads_strict(raw, max_depth)``: parse a reply, or raise ``JsonProblem``
  saying what is wrong (not UTF-8 JSON, nested too deep, a non-finite
  number, a lone surrogate) and where.

Paths read ``$.content.items[2]``. Pure: no I/O, no caxton imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any

#: Arrays and objects nested deeper than this are refused on input and output.
MAX_JSON_DEPTH = 64

# A JSON string (escapes included), unrolled so the regex runs in linear time without backtracking.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JsonProblem(ValueError):
    """Why a JSON text is not standard JSON the engine can pass on; ``path`` says where (or None)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class _Constant:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse into, to be found and named."""

    def __init__(self, name: str) -> None:
        self.name = name


def json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep ``body``'s arrays and objects nest; any answer <= ``limit`` means "not deeper than limit".

    Fast path: with no more brackets than ``limit`` the nesting cannot be deeper. Otherwise strings are
    cut out (brackets inside them do not count) and the depth is the running maximum of the brackets.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return 0
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def non_finite(raw: bytes) -> tuple[str, str] | None:
    """The first ``NaN``/``Infinity``/``-Infinity`` outside strings of the JSON text ``raw`` and its path.

    None when there is none, or when ``raw`` is not JSON at all (its reader says so itself). Cheap when
    the words do not occur.
    """
    if b"NaN" not in raw and b"Infinity" not in raw:
        return None
    try:
        value = json.loads(raw, parse_constant=_Constant)
    except (ValueError, RecursionError):
        return _non_finite_line(raw)
    return _first(value, lambda v: isinstance(v, _Constant))


def _non_finite_line(raw: bytes) -> tuple[str, str] | None:
    """As ``non_finite`` for JSON lines (one value a line): the path starts with ``line N:``."""
    for number, line in enumerate(raw.splitlines(), 1):
        if b"NaN" in line or b"Infinity" in line:
            try:
                found = _first(json.loads(line, parse_constant=_Constant), lambda v: isinstance(v, _Constant))
            except (ValueError, RecursionError):
                return None
            if found is not None:
                return found[0], f"line {number}: {found[1]}"
    return None


def loads_strict(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``raw`` (UTF-8 JSON) parsed; ``JsonProblem`` if it is not standard JSON within ``max_depth``."""
    depth = json_depth(raw, max_depth)
    if depth > max_depth:
        raise JsonProblem(f"nests {depth} levels deep; the limit is {max_depth}")
    seen: list[str] = []

    def constant(name: str) -> _Constant:
        seen.append(name)
        return _Constant(name)

    try:
        value = json.loads(raw, parse_constant=constant)
    except UnicodeDecodeError as exc:
        raise JsonProblem(f"is not UTF-8 JSON (invalid UTF-8: {exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"is not UTF-8 JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if seen:
        found = _first(value, lambda v: isinstance(v, _Constant))
        path = found[1] if found else None
        raise JsonProblem(f"holds the non-finite number {seen[0]} at {path} (not standard JSON)", path)
    if _SURROGATE_ESCAPE.search(raw):
        found = _first(value, _lone_surrogate)
        if found is not None:
            raise JsonProblem(f"holds a lone UTF-16 surrogate at {found[1]} (no UTF-8 encoding exists)", found[1])
    return value


def _lone_surrogate(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _first(value: Any, matches: Callable[[Any], bool]) -> tuple[str, str] | None:
    """The first value (or object key) that ``matches``, as (its name, its path)."""
    for path, item in _walk(value):
        if matches(item):
            return (item.name if isinstance(item, _Constant) else "string", path)
    return None


def _walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        yield where, item
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                yield f"{where} (key)", key
                stack.append((f"{where}.{key}" if _IDENTIFIER.match(key) else f"{where}[{json.dumps(key)}]", child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
