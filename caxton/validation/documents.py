"""Turn the bytes of an agent file or ``caxton.yaml`` into data plus positions.

Owns decoding (size, emptiness, binary, UTF-8), the ``Document`` (data plus
the map from key paths to file:line:column that every later diagnostic uses)
and TOML parsing (``tomllib``, loaded only when a text is parsed). The markdown
frontmatter split and YAML documents are ``caxton.validation.frontmatter`` (the
YAML parser itself is ``caxton.validation.yamldoc``), which build on this
module. Called by ``caxton.validation.pipeline``. Pure: bytes in,
``Document`` out; never raises for bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from caxton.spec.diagnostics import Diagnostic, Severity
from caxton.validation import codes

#: Agent files larger than this are rejected before parsing.
MAX_FILE_BYTES = 1024 * 1024
#: Nodes a YAML document may expand to (aliases counted each time): stops alias bombs.
MAX_YAML_NODES = 100_000
#: Lists and mappings nested deeper than this are CX116 (the top-level mapping is depth 1).
MAX_DEPTH = 64

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Pos:
    """A 1-based position in a file."""

    line: int
    column: int


@dataclass
class Document:
    """A parsed file: its data (``None`` when unusable), positions and problems.

    Positions are indexed lazily (most valid files never need them): the
    parser leaves an ``indexer`` that fills ``keys``/``values``/``text_lines``
    the first time a diagnostic asks for a position.
    """

    file: str
    data: dict[str, Any] | None = None
    start: Pos = Pos(1, 1)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    indexer: Callable[[Document], None] | None = None
    #: The whole text of the file (a reference, for positions inside string values: templates).
    text: str = ""
    _keys: dict[Path_, Pos] = field(default_factory=dict)
    _values: dict[Path_, Pos] = field(default_factory=dict)
    _text_lines: dict[Path_, int] = field(default_factory=dict)

    def _index(self) -> None:
        if self.indexer is not None:
            indexer, self.indexer = self.indexer, None
            indexer(self)

    @property
    def keys(self) -> dict[Path_, Pos]:
        self._index()
        return self._keys

    @property
    def values(self) -> dict[Path_, Pos]:
        self._index()
        return self._values

    @property
    def text_lines(self) -> dict[Path_, int]:
        self._index()
        return self._text_lines

    def key_pos(self, path: Path_) -> Pos:
        """Where the key of ``path`` is written, or the nearest enclosing key."""
        keys = self.keys
        for end in range(len(path), 0, -1):
            pos = keys.get(path[:end])
            if pos is not None:
                return pos
        return self.start

    def value_pos(self, path: Path_) -> Pos:
        """Where the value of ``path`` starts, falling back to its key."""
        pos = self.values.get(path)
        return pos if pos is not None else self.key_pos(path)

    def text_line(self, path: Path_) -> int:
        """The file line holding the first line of a string value (for templates)."""
        return self.text_lines.get(path, self.value_pos(path).line)

    def text_pos(self, path: Path_, line: int, column: int, template_line: str) -> Pos:
        """Where ``line``:``column`` of the string value at ``path`` (a template) is written in the file.

        The template's line is looked for on the file's line (quoting and indentation
        shift it); when it is not there as written (escapes), the column is the value's.
        """
        number = self.text_line(path) + line - 1
        lines = self.text.split("\n", number)
        text = lines[number - 1] if 0 < number <= len(lines) else ""
        start = self.value_pos(path).column - 1 if number == self.value_pos(path).line else 0
        found = text.find(template_line, start) if template_line else -1
        return Pos(number, found + column if found >= 0 else start + 1)


def diagnostic(
    code: str, file: str, message: str, pos: Pos | None = None, hint: str | None = None,
    severity: Severity | None = None,
) -> Diagnostic:
    """Build a diagnostic with the catalogue's default severity."""
    return Diagnostic(
        code=code,
        severity=severity or codes.BY_ID[code].severity,
        file=file,
        line=pos.line if pos else None,
        column=pos.column if pos else None,
        message=message,
        hint=hint,
    )


def decode(file: str, content: bytes, *, limit: int = MAX_FILE_BYTES) -> tuple[str | None, Diagnostic | None]:
    """Check size, emptiness, binary content and UTF-8; return the text or one diagnostic."""
    if len(content) > limit:
        return None, diagnostic("CX105", file, f"file is larger than the limit of {limit:,} bytes",
                                hint="split the agent's documentation out, or check this is the right file")
    if not content.strip():
        return None, diagnostic("CX102", file, "file is empty", Pos(1, 1),
                                hint="an agent file needs at least name, version and system_prompt (or kind: wasm)")
    if b"\x00" in content:
        at = content.index(b"\x00")
        return None, diagnostic("CX103", file, "file contains NUL bytes: it looks binary", _byte_pos(content, at),
                                hint="agent files are UTF-8 text; a .wasm module belongs under wasm/, not agents/")
    try:
        return content.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        return None, diagnostic("CX104", file, f"not valid UTF-8 (byte 0x{content[error.start]:02x})",
                                _byte_pos(content, error.start), hint="re-save the file as UTF-8")


def _byte_pos(content: bytes, offset: int) -> Pos:
    line_start = content.rfind(b"\n", 0, offset) + 1
    return Pos(content.count(b"\n", 0, offset) + 1, offset - line_start + 1)


def too_deep(file: str, pos: Pos | None) -> Diagnostic:
    """CX116: nesting past :data:`MAX_DEPTH` (checked before any recursive code walks the data)."""
    return diagnostic("CX116", file, f"lists and mappings are nested deeper than {MAX_DEPTH} levels", pos,
                      hint="flatten the structure; no agent field needs this depth")


def depth_exceeds(data: Any, limit: int = MAX_DEPTH) -> bool:
    """True when lists/dicts in ``data`` nest deeper than ``limit`` (iterative: safe on any depth)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def type_name(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__)


_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_TOML_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=\s*(.*)$")


def parse_toml(file: str, text: str) -> Document:
    """A ``.toml`` agent: the same keys as the frontmatter; ``documentation`` holds the body."""
    import tomllib

    doc = Document(file=file, text=text)
    try:
        data = tomllib.loads(text)
    except RecursionError:  # tomllib recurses per nesting level
        doc.diagnostics.append(too_deep(file, None))
        return doc
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _TOML_AT.search(message)
        pos = Pos(int(match.group(1)), int(match.group(2))) if match else None
        problem = _TOML_AT.sub("", message).strip()
        doc.diagnostics.append(diagnostic("CX111", file, f"TOML syntax error: {problem}", pos,
                                          hint="strings need quotes; tables are [name]; see https://toml.io"))
        return doc
    if depth_exceeds(data):
        doc.diagnostics.append(too_deep(file, None))
        return doc
    doc.indexer = lambda d: _scan_toml_positions(d, text)
    doc.data = data
    return doc


def _split_dotted(key: str) -> list[str]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.\s]+", key)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _scan_toml_positions(doc: Document, text: str) -> None:
    """Approximate key positions line by line (tomllib reports none)."""
    table: list[str | int] = []
    arrays: dict[tuple[str | int, ...], int] = {}
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if in_multiline in line:
                in_multiline = None
            continue
        header = _TOML_TABLE.match(line)
        if header:
            parts: tuple[str | int, ...] = tuple(_split_dotted(header.group(2)))
            if header.group(1) == "[[":
                arrays[parts] = arrays.get(parts, -1) + 1
                table = [*parts, arrays[parts]]
            else:
                table = list(parts)
            doc._keys.setdefault(tuple(parts), Pos(number, line.index("[") + 1))
            continue
        match = _TOML_KEY.match(line)
        if not match:
            continue
        path = (*table, *_split_dotted(match.group(1)))
        column = len(line) - len(line.lstrip()) + 1
        doc._keys[path] = Pos(number, column)
        doc._values[path] = Pos(number, match.start(2) + 1)
        value = match.group(2)
        for quote in ('"""', "'''"):
            if value.startswith(quote) and value.count(quote) == 1:
                in_multiline = quote
                doc._text_lines[path] = number + 1
