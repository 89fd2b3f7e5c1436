"""Read and trim the section layout of a core WebAssembly binary, before compiling it.

Two facts decide how fast a module compiles, and both are cheap to read from
the bytes (no decoding of function bodies):

- the size of the code section (``Layout.code_bytes``): ``caxton.sandbox.modules``
  picks the compiler from it (Cranelift for small modules, Winch above a size);
- the function exports: wasmtime compiles one entry trampoline per exported
  function (with Cranelift, whichever compiler runs the bodies), and the sandbox
  only ever calls the ABI exports. ``keep_exports`` rewrites the export section
  so that only the exports the host uses are compiled: the guest cannot see its
  own exports, function indices do not change, and wasmtime still validates the
  whole module. A module exporting 2,400 functions compiles ~3x faster this way.

Anything this reader does not understand raises ``MalformedWasm``; callers then
compile the original bytes unchanged (wasmtime gives the real error, if any).
Called by ``caxton.sandbox.modules``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

HEADER = b"\x00asm\x01\x00\x00\x00"
SECTION_EXPORT = 7
SECTION_CODE = 10
#: Export kind byte -> the name ``LoadedModule.exports`` uses.
EXPORT_KINDS: dict[int, str] = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
_KIND_CODES: dict[str, int] = {kind: code for code, kind in EXPORT_KINDS.items()}


class MalformedWasm(ValueError):
    """The bytes are not a core module this reader can lay out."""


@dataclass(frozen=True)
class Section:
    """One section: its id and where its header and payload are in the module."""

    id: int
    header_start: int
    start: int
    end: int


@dataclass(frozen=True)
class Export:
    name: str
    kind: str
    index: int


@dataclass(frozen=True)
class Layout:
    """What the sandbox needs to know about a module before compiling it."""

    code_bytes: int
    exports: tuple[Export, ...]
    export_section: Section | None


def read_uleb(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    """A u32 LEB128 at ``pos`` (not past ``limit``): the value and the position after it."""
    value = shift = 0
    for _ in range(5):
        if pos >= limit:
            raise MalformedWasm("truncated LEB128 number")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 32:
                raise MalformedWasm("LEB128 number over 32 bits")
            return value, pos
        shift += 7
    raise MalformedWasm("LEB128 number longer than 5 bytes")


def encode_uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sections(data: bytes) -> list[Section]:
    """Every section of a core module, in order; raises MalformedWasm."""
    if not data.startswith(HEADER):
        raise MalformedWasm("not a core WebAssembly module (bad magic or version)")
    found: list[Section] = []
    pos = len(HEADER)
    while pos < len(data):
        header_start, section_id = pos, data[pos]
        size, start = read_uleb(data, pos + 1, len(data))
        end = start + size
        if end > len(data):
            raise MalformedWasm(f"section {section_id} runs past the end of the module")
        found.append(Section(section_id, header_start, start, end))
        pos = end
    return found


def code_size(data: bytes) -> int:
    """Bytes of the code section (0 when the bytes cannot be laid out); reads section headers only."""
    try:
        return sum(section.end - section.start for section in sections(data) if section.id == SECTION_CODE)
    except MalformedWasm:
        return 0


def read_layout(data: bytes) -> Layout:
    """Code size and exports of a module; raises MalformedWasm."""
    code_bytes, export_section = 0, None
    exports: tuple[Export, ...] = ()
    for section in sections(data):
        if section.id == SECTION_CODE:
            code_bytes += section.end - section.start
        elif section.id == SECTION_EXPORT:
            if export_section is not None:
                raise MalformedWasm("two export sections")
            export_section, exports = section, _exports(data, section)
    return Layout(code_bytes=code_bytes, exports=exports, export_section=export_section)


def _exports(data: bytes, section: Section) -> tuple[Export, ...]:
    count, pos = read_uleb(data, section.start, section.end)
    items: list[Export] = []
    for _ in range(count):
        length, pos = read_uleb(data, pos, section.end)
        if pos + length + 1 > section.end:
            raise MalformedWasm("export entry runs past its section")
        try:
            name = data[pos:pos + length].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedWasm("export name is not UTF-8") from None
        kind = EXPORT_KINDS.get(data[pos + length])
        if kind is None:
            raise MalformedWasm(f"unknown export kind {data[pos + length]}")
        index, pos = read_uleb(data, pos + length + 1, section.end)
        items.append(Export(name, kind, index))
    if pos != section.end:
        raise MalformedWasm("export section has trailing bytes")
    return tuple(items)


def keep_exports(data: bytes, layout: Layout, keep: Callable[[Export], bool]) -> bytes:
    """The module with only the exports ``keep`` accepts (the same bytes when it keeps all)."""
    section = layout.export_section
    kept = [item for item in layout.exports if keep(item)]
    if section is None or len(kept) == len(layout.exports):
        return data
    payload = bytearray(encode_uleb(len(kept)))
    for item in kept:
        name = item.name.encode("utf-8")
        payload += encode_uleb(len(name)) + name + bytes([_KIND_CODES[item.kind]]) + encode_uleb(item.index)
    header = bytes([SECTION_EXPORT]) + encode_uleb(len(payload))
    return data[:section.header_start] + header + bytes(payload) + data[section.end:]
