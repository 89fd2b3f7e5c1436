"""Read a core WebAssembly binary without wasmtime: its section layout and its interface.

Pure Python, no dependency: validation uses it to check a module's imports,
exports and memories where the engine (and wasmtime) is not installed
(:func:`read_interface`); the sandbox uses the layout before compiling.

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

Anything this reader does not understand raises ``MalformedWasm``; the sandbox
then compiles the original bytes unchanged (wasmtime gives the real error, if
any), validation reports the module as invalid. Function bodies are never
decoded. Called by ``caxton.validation.wasm`` and ``caxton.sandbox.modules``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

HEADER = b"\x00asm\x01\x00\x00\x00"
SECTION_TYPE = 1
SECTION_IMPORT = 2
SECTION_FUNCTION = 3
SECTION_MEMORY = 5
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


def read_uleb(data: bytes, pos: int, limit: int, bits: int = 32) -> tuple[int, int]:
    """An unsigned LEB128 of ``bits`` at ``pos`` (not past ``limit``): the value and the position after it."""
    value = shift = 0
    for _ in range((bits + 6) // 7):
        if pos >= limit:
            raise MalformedWasm("truncated LEB128 number")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << bits:
                raise MalformedWasm(f"LEB128 number over {bits} bits")
            return value, pos
        shift += 7
    raise MalformedWasm(f"LEB128 number longer than {(bits + 6) // 7} bytes")


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


#: Value type byte -> the name wasmtime and ``caxton.spec.abi`` use.
VALUE_TYPES: dict[int, str] = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
                               0x70: "funcref", 0x6F: "externref"}
_FUNC_TYPE = 0x60
_LIMIT_MAX, _LIMIT_SHARED, _LIMIT_64 = 0x01, 0x02, 0x04

Signature = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Limits:
    """A memory's size in pages (``max`` None: unbounded), and the threads / memory64 flags."""

    min: int
    max: int | None
    shared: bool = False
    is64: bool = False


@dataclass(frozen=True)
class Import:
    """One import; ``signature`` for a function, ``limits`` for a memory, ``value_type`` for a global."""

    module: str
    name: str
    kind: str
    signature: Signature | None = None
    limits: Limits | None = None
    value_type: str | None = None


@dataclass(frozen=True)
class Interface:
    """What a module asks of its host and offers it, read from its declarations."""

    imports: tuple[Import, ...]
    exports: tuple[Export, ...]
    #: Exported function name -> its signature.
    signatures: dict[str, Signature]
    #: Every memory: the imported ones, then the defined ones.
    memories: tuple[Limits, ...]
    #: Value types written in function types and imported globals (``v128`` means SIMD).
    value_types: frozenset[str]


class _Cursor:
    """Reads the payload of one section; every read checks the section's end."""

    def __init__(self, data: bytes, section: Section) -> None:
        self.data, self.pos, self.end = data, section.start, section.end

    def u32(self) -> int:
        value, self.pos = read_uleb(self.data, self.pos, self.end)
        return value

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MalformedWasm("unexpected end of section")
        self.pos += 1
        return self.data[self.pos - 1]

    def name(self) -> str:
        length = self.u32()
        if self.pos + length > self.end:
            raise MalformedWasm("name runs past its section")
        try:
            text = self.data[self.pos:self.pos + length].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedWasm("name is not UTF-8") from None
        self.pos += length
        return text

    def value_type(self) -> str:
        code = self.byte()
        if code not in VALUE_TYPES:
            raise MalformedWasm(f"unknown value type 0x{code:02x}")
        return VALUE_TYPES[code]

    def limits(self) -> Limits:
        flags = self.byte()
        if flags & ~(_LIMIT_MAX | _LIMIT_SHARED | _LIMIT_64):
            raise MalformedWasm(f"unknown limits flags 0x{flags:02x}")
        bits = 64 if flags & _LIMIT_64 else 32
        low, self.pos = read_uleb(self.data, self.pos, self.end, bits)
        high = None
        if flags & _LIMIT_MAX:
            high, self.pos = read_uleb(self.data, self.pos, self.end, bits)
        return Limits(low, high, bool(flags & _LIMIT_SHARED), bool(flags & _LIMIT_64))

    def done(self, what: str) -> None:
        if self.pos != self.end:
            raise MalformedWasm(f"{what} section has trailing bytes")


def read_interface(data: bytes) -> Interface:
    """Imports, exports (with function signatures) and memories of a core module; raises MalformedWasm."""
    found: dict[int, Section] = {}
    for section in sections(data):
        if section.id in found and section.id != 0:
            raise MalformedWasm(f"two sections with id {section.id}")
        found[section.id] = section
    types = _types(data, found[SECTION_TYPE]) if SECTION_TYPE in found else []
    imports = _imports(data, found[SECTION_IMPORT], types) if SECTION_IMPORT in found else []
    functions = [i.signature for i in imports if i.kind == "func" and i.signature is not None]
    if SECTION_FUNCTION in found:
        functions += [_type_at(types, index) for index in _indices(data, found[SECTION_FUNCTION])]
    memories = [i.limits for i in imports if i.limits is not None]
    if SECTION_MEMORY in found:
        memories += _memories(data, found[SECTION_MEMORY])
    exports = _exports(data, found[SECTION_EXPORT]) if SECTION_EXPORT in found else ()
    signatures = {e.name: _function_at(functions, e.index) for e in exports if e.kind == "func"}
    value_types = {t for params, results in types for t in (*params, *results)}
    value_types |= {i.value_type for i in imports if i.value_type is not None}
    return Interface(tuple(imports), exports, signatures, tuple(memories), frozenset(value_types))


def _types(data: bytes, section: Section) -> list[Signature]:
    cursor = _Cursor(data, section)
    types: list[Signature] = []
    for _ in range(cursor.u32()):
        form = cursor.byte()
        if form != _FUNC_TYPE:
            raise MalformedWasm(f"type form 0x{form:02x} is not a function type")
        params = tuple(cursor.value_type() for _ in range(cursor.u32()))
        results = tuple(cursor.value_type() for _ in range(cursor.u32()))
        types.append((params, results))
    cursor.done("type")
    return types


def _type_at(types: list[Signature], index: int) -> Signature:
    if index >= len(types):
        raise MalformedWasm(f"type index {index} out of range")
    return types[index]


def _function_at(functions: list[Signature], index: int) -> Signature:
    if index >= len(functions):
        raise MalformedWasm(f"exported function index {index} out of range")
    return functions[index]


def _imports(data: bytes, section: Section, types: list[Signature]) -> list[Import]:
    cursor = _Cursor(data, section)
    items: list[Import] = []
    for _ in range(cursor.u32()):
        module, name, kind = cursor.name(), cursor.name(), cursor.byte()
        if kind == 0:
            items.append(Import(module, name, "func", signature=_type_at(types, cursor.u32())))
        elif kind == 1:
            cursor.value_type()
            cursor.limits()
            items.append(Import(module, name, "table"))
        elif kind == 2:
            items.append(Import(module, name, "memory", limits=cursor.limits()))
        elif kind == 3:
            value_type = cursor.value_type()
            if cursor.byte() not in (0, 1):
                raise MalformedWasm("global mutability is neither 0 nor 1")
            items.append(Import(module, name, "global", value_type=value_type))
        elif kind == 4:
            cursor.byte()
            _type_at(types, cursor.u32())
            items.append(Import(module, name, "tag"))
        else:
            raise MalformedWasm(f"unknown import kind {kind}")
    cursor.done("import")
    return items


def _indices(data: bytes, section: Section) -> list[int]:
    cursor = _Cursor(data, section)
    found = [cursor.u32() for _ in range(cursor.u32())]
    cursor.done("function")
    return found


def _memories(data: bytes, section: Section) -> list[Limits]:
    cursor = _Cursor(data, section)
    found = [cursor.limits() for _ in range(cursor.u32())]
    cursor.done("memory")
    return found
