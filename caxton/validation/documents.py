"""Turn the bytes of an agent file or ``caxton.yaml`` into data plus positions.

Owns decoding (size, emptiness, binary, UTF-8), the markdown frontmatter split,
YAML and TOML parsing, and the map from key paths to file:line:column that
every later diagnostic uses. Called by ``caxton.validation.pipeline``. Pure:
bytes in, ``Document`` out; never raises for bad input.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from caxton.spec.diagnostics import Diagnostic, Severity
from caxton.validation import codes

#: Agent files larger than this are rejected before parsing.
MAX_FILE_BYTES = 1024 * 1024
#: Nodes a YAML document may expand to (aliases counted each time): stops alias bombs.
MAX_YAML_NODES = 100_000

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


def parse_markdown(file: str, text: str) -> Document:
    """A ``.md`` agent: YAML frontmatter between ``---`` lines; the body becomes ``documentation``."""
    doc = Document(file=file, start=Pos(1, 1))
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        doc.diagnostics.append(diagnostic(
            "CX112", file, "no YAML frontmatter: the first line must be '---'", Pos(1, 1),
            hint="start the file with '---', the agent's fields, then another '---' line"))
        return doc
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        doc.diagnostics.append(diagnostic(
            "CX113", file, "the frontmatter opened on line 1 is never closed", Pos(len(lines), 1),
            hint="add a line with '---' after the last field"))
        return doc
    _parse_yaml_into(doc, "".join(lines[1:end]), line_offset=1)
    body = "".join(lines[end + 1:]).strip()
    if doc.data is not None and body:
        doc.data["documentation"] = body
    return doc


def parse_yaml_file(file: str, text: str) -> Document:
    """A plain YAML document (``caxton.yaml``)."""
    doc = Document(file=file)
    _parse_yaml_into(doc, text, line_offset=0)
    return doc


def _parse_yaml_into(doc: Document, text: str, *, line_offset: int) -> None:
    loader = yaml.CSafeLoader(text) if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = _Builder(doc, loader, line_offset).document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        pos = Pos(mark.line + 1 + line_offset, mark.column + 1) if mark else None
        problem = error.problem or error.context or "invalid YAML"
        doc.diagnostics.append(diagnostic("CX110", doc.file, f"YAML syntax error: {problem}", pos,
                                          hint=_yaml_hint(problem)))
        return
    except _TooBig:
        doc.diagnostics.append(diagnostic(
            "CX110", doc.file, f"document expands to more than {MAX_YAML_NODES:,} nodes",
            Pos(1 + line_offset, 1), hint="remove the YAML aliases (*ref) that multiply the document"))
        return
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as error:
        doc.diagnostics.append(diagnostic("CX110", doc.file, f"YAML error: {error}", doc.start))
        return
    finally:
        loader.dispose()
    if node is not None:
        doc.indexer = lambda d: _YamlIndexer(d, line_offset).walk(node, ())
    if data is None:
        data = {}
    if not isinstance(data, dict):
        doc.diagnostics.append(diagnostic(
            "CX114", doc.file, f"expected a mapping of fields, found {_type_name(data)}",
            Pos(1 + line_offset, 1), hint="write fields as 'key: value' lines"))
        return
    doc.data = {str(k): v for k, v in data.items()}


class _TooBig(Exception):
    """The document expands (aliases included) past MAX_YAML_NODES."""


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Builder:
    """A fast safe constructor for the common shapes (str/map/seq), falling back to
    PyYAML's SafeConstructor for other scalars and for unusual documents (merge keys,
    explicit tags). Also reports duplicate keys and measures the expanded size."""

    def __init__(self, doc: Document, loader: Any, line_offset: int) -> None:
        self.doc = doc
        self.loader = loader
        self.offset = line_offset
        self.memo: dict[int, tuple[Any, int]] = {}

    def document(self, node: yaml.Node) -> Any:
        try:
            value, _ = self.build(node)
        except _Unusual:
            return self.loader.construct_document(node)
        return value

    def build(self, node: yaml.Node) -> tuple[Any, int]:
        found = self.memo.get(id(node))
        if found is not None:
            return found
        if isinstance(node, yaml.ScalarNode):
            value = node.value if node.tag == _STR else self.loader.construct_object(node, deep=True)
            return self._keep(node, value, 1)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            items: list[Any] = []
            self.memo[id(node)] = (items, 1)
            size = 1
            for child in node.value:
                value, child_size = self.build(child)
                items.append(value)
                size += child_size
            return self._keep(node, items, size)
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            return self._mapping(node)
        raise _Unusual

    def _mapping(self, node: yaml.MappingNode) -> tuple[Any, int]:
        mapping: dict[Any, Any] = {}
        self.memo[id(node)] = (mapping, 1)
        size = 1
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise _Unusual
            key, _ = self.build(key_node)
            if key in mapping:
                self._duplicate(key_node, key)
            value, child_size = self.build(value_node)
            mapping[key] = value
            size += child_size + 1
        return self._keep(node, mapping, size)

    def _keep(self, node: yaml.Node, value: Any, size: int) -> tuple[Any, int]:
        if size > MAX_YAML_NODES:
            raise _TooBig
        self.memo[id(node)] = (value, size)
        return value, size

    def _duplicate(self, key_node: yaml.Node, key: Any) -> None:
        pos = Pos(key_node.start_mark.line + 1 + self.offset, key_node.start_mark.column + 1)
        self.doc.diagnostics.append(diagnostic("CX115", self.doc.file, f"duplicate key {key!r}", pos,
                                               hint="YAML keeps only the last value; remove one of them"))


class _Unusual(Exception):
    """A node the fast builder leaves to PyYAML's constructor."""


def _yaml_hint(problem: str) -> str | None:
    if "mapping values are not allowed" in problem:
        return "quote values that contain ': ' (e.g. description: \"a: b\")"
    if "found character '\\t'" in problem:
        return "YAML does not allow tabs for indentation; use spaces"
    if "could not find expected ':'" in problem:
        return "each field is 'key: value'; check the indentation of the line above"
    return None


class _YamlIndexer:
    """Record key and value positions of a composed YAML node tree."""

    def __init__(self, doc: Document, line_offset: int) -> None:
        self.doc = doc
        self.offset = line_offset
        self.count = 0

    def pos(self, node: yaml.Node) -> Pos:
        return Pos(node.start_mark.line + 1 + self.offset, node.start_mark.column + 1)

    def walk(self, node: yaml.Node, path: Path_) -> None:
        self.count += 1
        if self.count > MAX_YAML_NODES:
            return
        self.doc._values[path] = self.pos(node)
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            self.doc._text_lines[path] = node.start_mark.line + 2 + self.offset
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?")
                self.doc._keys.setdefault(child, self.pos(key_node))
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__)


_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_TOML_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=\s*(.*)$")


def parse_toml(file: str, text: str) -> Document:
    """A ``.toml`` agent: the same keys as the frontmatter; ``documentation`` holds the body."""
    doc = Document(file=file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _TOML_AT.search(message)
        pos = Pos(int(match.group(1)), int(match.group(2))) if match else None
        problem = _TOML_AT.sub("", message).strip()
        doc.diagnostics.append(diagnostic("CX111", file, f"TOML syntax error: {problem}", pos,
                                          hint="strings need quotes; tables are [name]; see https://toml.io"))
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
