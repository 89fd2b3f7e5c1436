"""YAML documents with positions: frontmatter and ``caxton.yaml`` parsed into plain data.

Owns the PyYAML side of :mod:`caxton.validation.frontmatter` (imported only when
a YAML text is actually parsed, so a run answered from the validation cache
never loads PyYAML): a node-count limit against alias bombs, duplicate keys,
unusual tags refused, and a lazy index of where every key and value is written.
"""

from __future__ import annotations

from typing import Any

import yaml

from caxton.validation.documents import (
    MAX_DEPTH,
    MAX_YAML_NODES,
    Document,
    Path_,
    Pos,
    diagnostic,
    too_deep,
    type_name,
)


def parse_yaml_into(doc: Document, text: str, *, line_offset: int) -> None:
    loader = yaml.CSafeLoader(text) if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        deep = _too_deep(node)
        if deep is not None:
            doc.diagnostics.append(too_deep(doc.file, Pos(deep.start_mark.line + 1 + line_offset,
                                                          deep.start_mark.column + 1)))
            return
        data = _Builder(doc, loader, line_offset).document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        pos = Pos(mark.line + 1 + line_offset, mark.column + 1) if mark else None
        problem = error.problem or error.context or "invalid YAML"
        if "nesting depth" in problem:  # libyaml's own limit (1000 levels)
            doc.diagnostics.append(too_deep(doc.file, pos))
        else:
            doc.diagnostics.append(diagnostic("CX110", doc.file, f"YAML syntax error: {problem}", pos,
                                              hint=_yaml_hint(problem)))
        return
    except RecursionError:  # the pure-Python composer recurses per nesting level
        doc.diagnostics.append(too_deep(doc.file, doc.start))
        return
    except _TooBig:
        doc.diagnostics.append(diagnostic(
            "CX110", doc.file, f"document expands to more than {MAX_YAML_NODES:,} nodes",
            Pos(1 + line_offset, 1), hint="remove the YAML aliases (*ref) that multiply the document"))
        return
    except (yaml.YAMLError, ValueError, TypeError) as error:
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
            "CX114", doc.file, f"expected a mapping of fields, found {type_name(data)}",
            Pos(1 + line_offset, 1), hint="write fields as 'key: value' lines"))
        return
    doc.data = {str(k): v for k, v in data.items()}


def _too_deep(root: yaml.Node | None) -> yaml.Node | None:
    """The first collection node nested deeper than MAX_DEPTH (iterative; aliases are shared nodes,
    each visited once per path, so a node count bounds the walk)."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)] if root is not None else []
    seen = 0
    while stack and seen <= MAX_YAML_NODES:
        node, depth = stack.pop()
        seen += 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        if depth > MAX_DEPTH:
            return node
        stack.extend((child, depth + 1) for child in children)
    return None


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
