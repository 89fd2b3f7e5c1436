"""Which view renders which result: text views by type name, JSON views where the JSON is not the result itself.

View modules register with ``@text_view("TypeName")`` (and ``@json_view``) when imported; ``render``
imports every module of ``MODULES`` on first use (they import nothing heavy: the result types only
for type checking), then looks the result's class and its bases up by name.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from caxton.cli.common import Output

#: The view modules of ``caxton.cli.views``, one per result family (explicit: add a family here).
MODULES = ("agents", "applies", "backups", "health", "memory", "plans", "project", "reconcile", "revisions", "rollouts",
           "tokens")

F = TypeVar("F", bound=Callable[..., Any])

_TEXT: dict[str, Callable[[Any], Iterable[str]]] = {}
_JSON: dict[str, Callable[[Any], Any]] = {}
_loaded: list[bool] = []


class Note(str):
    """A line of a text view that goes to stderr (a diagnostic beside the result)."""


class Event(dict[str, Any]):
    """A JSON view that is one event of a stream (``{"event": ...}`` on one line), not a document."""


@dataclass(frozen=True)
class Shown:
    """A result with what its text needs beside it (a URL, a path): its JSON is ``result`` alone."""

    result: Any


def event(kind: str, /, **fields: Any) -> Event:
    return Event({"event": kind, **fields})


def emit_event(kind: str, /, **fields: Any) -> None:
    """Write one event line to stdout now (a follower's progress is read as it comes)."""
    sys.stdout.write(json.dumps(event(kind, **fields)) + "\n")
    sys.stdout.flush()


def text_view(*names: str) -> Callable[[F], F]:
    """Register the decorated function as the text of the result types ``names`` (lines for stdout)."""
    return _register(_TEXT, names)


def json_view(*names: str) -> Callable[[F], F]:
    """Register the decorated function as the JSON of ``names`` (default: the result itself, or a
    ``Shown``'s ``result``)."""
    return _register(_JSON, names)


def _register(table: dict[str, Callable[..., Any]], names: tuple[str, ...]) -> Callable[[F], F]:
    def add(view: F) -> F:
        for name in names:
            if name in table:
                raise RuntimeError(f"two views of {name}")
            table[name] = view
        return view

    return add


def load() -> None:
    """Import every view module (once): each registers its views."""
    if not _loaded:
        for module in MODULES:
            importlib.import_module(f"caxton.cli.views.{module}")
        _loaded.append(True)


def registered() -> tuple[set[str], set[str]]:
    """The type names with a text view, and those with a JSON view of their own."""
    load()
    return set(_TEXT), set(_JSON)


def _find(table: dict[str, Callable[..., Any]], result: object) -> Callable[..., Any] | None:
    load()
    for kind in type(result).__mro__:
        if kind.__name__ in table:
            return table[kind.__name__]
    return None


def text_lines(result: object) -> list[str]:
    """The text view of ``result`` as lines (``Note`` lines for stderr among them)."""
    view = _find(_TEXT, result)
    if view is None:
        raise TypeError(f"no text view of {type(result).__name__}")
    return list(view(result))


def as_json(result: object) -> Any:
    """What ``--output json`` prints of ``result``."""
    view = _find(_JSON, result)
    if view is not None:
        return view(result)
    return result.result if isinstance(result, Shown) else result


def json_text(value: Any) -> str:
    """One JSON document (wire models as the engine sent them: ``caxton.spec.api.wire``)."""
    return json.dumps(value, indent=2, sort_keys=False, default=_jsonable) + "\n"


def emit_json(value: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json_text(value))


def _jsonable(value: object) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        from caxton.spec.api import wire

        return wire(value)
    return str(value)


def rendered(result: object, output: Output) -> str:
    """What ``render`` writes to stdout, as one string."""
    from caxton.cli.common import Output

    if output is Output.json:
        value = as_json(result)
        return json.dumps(value) + "\n" if isinstance(value, Event) else json_text(value)
    return "".join(line + "\n" for line in text_lines(result) if not isinstance(line, Note))


def render(result: object, output: Output) -> None:
    """Print ``result`` as ``output`` says: its JSON, or its text view (notes to stderr)."""
    from caxton.cli.common import Output

    if output is Output.json:
        sys.stdout.write(rendered(result, output))
        sys.stdout.flush()
        return
    for line in text_lines(result):
        (sys.stderr if isinstance(line, Note) else sys.stdout).write(line + "\n")
