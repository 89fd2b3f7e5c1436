"""Which WebAssembly proposals a module's function bodies use, read without wasmtime.

A skip-only decoder: it walks each body's locals and instructions, skipping
immediates, and notes the instructions of the proposals a policy can deny
(``simd``, ``relaxed-simd``, ``threads``, ``bulk-memory``, ``tail-call``). It
does not validate (types, stack, indices): that is wasmtime's job, when the
engine extra is installed. An instruction it does not know (the GC proposal,
a future one) ends the scan with ``None``: the caller then says that only the
declarations were read. Called by ``caxton.validation.wasm`` in the light
install; pure.
"""

from __future__ import annotations

from caxton.rules.wasmbin import SECTION_CODE, VALUE_TYPES, MalformedWasm, read_uleb, sections

_NO_IMMEDIATE = frozenset([0x00, 0x01, 0x05, 0x0A, 0x0B, 0x0F, 0x19, 0x1A, 0x1B, 0xD1, 0xD3, 0xD5,
                           *range(0x45, 0xC5)])
_ONE_INDEX = frozenset([0x07, 0x08, 0x09, 0x0C, 0x0D, 0x10, 0x12, 0x14, 0x15, 0x18, 0x20, 0x21, 0x22, 0x23, 0x24,
                        0x25, 0x26, 0x3F, 0x40, 0xD2, 0xD4, 0xD6])
_TWO_INDICES = frozenset([0x11, 0x13])
_BLOCKS = frozenset([0x02, 0x03, 0x04, 0x06])
_TAIL_CALLS = frozenset([0x12, 0x13, 0x15])
#: 0xFC sub-opcodes: (immediate count, feature).
_MISC: dict[int, tuple[int, str | None]] = {
    **{op: (0, None) for op in range(8)}, 8: (2, "bulk-memory"), 9: (1, "bulk-memory"), 10: (2, "bulk-memory"),
    11: (1, "bulk-memory"), 12: (2, "bulk-memory"), 13: (1, "bulk-memory"), 14: (2, "bulk-memory"),
    15: (1, None), 16: (1, None), 17: (1, None),
}
_SIMD_MEMARG = frozenset([*range(0, 12), 92, 93])
_SIMD_LANE = frozenset(range(21, 35))
_SIMD_MEMARG_LANE = frozenset(range(84, 92))
_RELAXED_SIMD = range(0x100, 0x114)
_ATOMIC_FENCE = 0x03


class _Unknown(Exception):
    """An instruction or encoding this decoder does not know."""


class _Body:
    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end
        self.used: set[str] = set()

    def u32(self) -> int:
        value, self.pos = read_uleb(self.data, self.pos, self.end)
        return value

    def u64(self) -> int:
        value, self.pos = read_uleb(self.data, self.pos, self.end, 64)
        return value

    def signed(self, bits: int) -> None:
        for _ in range((bits + 6) // 7):
            if self.pos >= self.end:
                raise MalformedWasm("truncated LEB128 number")
            self.pos += 1
            if not self.data[self.pos - 1] & 0x80:
                return
        raise MalformedWasm("LEB128 number too long")

    def skip(self, count: int) -> None:
        if self.pos + count > self.end:
            raise MalformedWasm("immediate runs past the function body")
        self.pos += count

    def byte(self) -> int:
        self.skip(1)
        return self.data[self.pos - 1]

    def block_type(self) -> None:
        if self.pos < self.end and (self.data[self.pos] == 0x40 or self.data[self.pos] in VALUE_TYPES):
            self.pos += 1
        else:
            self.signed(33)

    def memarg(self) -> None:
        flags = self.u32()
        if flags & 0x40:
            self.u32()
        self.u64()

    def locals(self) -> None:
        for _ in range(self.u32()):
            self.u32()
            value_type = self.byte()
            if value_type not in VALUE_TYPES:
                raise _Unknown
            if VALUE_TYPES[value_type] == "v128":
                self.used.add("simd")

    def instructions(self) -> None:
        while self.pos < self.end:
            self.instruction(self.byte())

    def instruction(self, op: int) -> None:
        if op in _NO_IMMEDIATE:
            return
        if op in _TAIL_CALLS:
            self.used.add("tail-call")
        if op in _ONE_INDEX:
            self.u32()
        elif op in _TWO_INDICES:
            self.u32()
            self.u32()
        elif op in _BLOCKS:
            self.block_type()
        elif 0x28 <= op <= 0x3E:
            self.memarg()
        else:
            self.special(op)

    def special(self, op: int) -> None:
        if op == 0x0E:
            for _ in range(self.u32() + 1):
                self.u32()
        elif op == 0x1C:
            for _ in range(self.u32()):
                self.byte()
        elif op == 0x41:
            self.signed(32)
        elif op == 0x42:
            self.signed(64)
        elif op in (0x43, 0x44):
            self.skip(4 if op == 0x43 else 8)
        elif op == 0xD0:
            self.block_type()
        elif op == 0xFC:
            self.misc(self.u32())
        elif op == 0xFD:
            self.simd(self.u32())
        elif op == 0xFE:
            self.atomic(self.u32())
        else:
            raise _Unknown

    def misc(self, sub: int) -> None:
        if sub not in _MISC:
            raise _Unknown
        count, feature = _MISC[sub]
        for _ in range(count):
            self.u32()
        if feature is not None:
            self.used.add(feature)

    def simd(self, sub: int) -> None:
        self.used.add("relaxed-simd" if sub in _RELAXED_SIMD else "simd")
        if sub in _SIMD_MEMARG:
            self.memarg()
        elif sub in (12, 13):
            self.skip(16)
        elif sub in _SIMD_LANE:
            self.skip(1)
        elif sub in _SIMD_MEMARG_LANE:
            self.memarg()
            self.skip(1)

    def atomic(self, sub: int) -> None:
        self.used.add("threads")
        if sub == _ATOMIC_FENCE:
            self.skip(1)
        else:
            self.memarg()


def features_used(data: bytes) -> frozenset[str] | None:
    """The deniable proposals whose instructions (or v128 locals) the bodies use; ``None`` when a body
    holds an instruction or an encoding this decoder does not know. Raises MalformedWasm when the
    code section itself is broken."""
    used: set[str] = set()
    for section in sections(data):
        if section.id != SECTION_CODE:
            continue
        count, pos = read_uleb(data, section.start, section.end)
        for _ in range(count):
            size, start = read_uleb(data, pos, section.end)
            if start + size > section.end:
                raise MalformedWasm("function body runs past the code section")
            body = _Body(data, start, start + size)
            try:
                body.locals()
                body.instructions()
            except (_Unknown, MalformedWasm):  # not this decoder's to judge: wasmtime validates bodies
                return None
            used |= body.used
            pos = start + size
    return frozenset(used)
