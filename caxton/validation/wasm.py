"""Checks of a WASM agent's module: presence, digest pin, size, structure, imports,
memory, required ABI exports and denied features.

Imports, exports and memories are read by the pure-Python reader
(``caxton.rules.wasmbin``), so they are checked in the light install too.
When wasmtime (the ``engine`` extra) is importable it also validates the whole
module (function bodies) and checks each denied feature; without it, denied
features are read from the declarations and the instructions
(``caxton.validation.wasmcode``) and a note (CX416) says what was not checked. wasmtime is imported lazily, only when a WASM agent is validated.
Called by ``caxton.validation.pipeline``; pure apart from validating the bytes
it is given.
"""

from __future__ import annotations

import atexit
import fnmatch
import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from caxton.rules import wasmbin
from caxton.spec import abi
from caxton.spec.agent import WasmAgent
from caxton.spec.diagnostics import Diagnostic
from caxton.validation import wasmcode
from caxton.validation.documents import Document, Pos, diagnostic
from caxton.validation.modules import ModuleLookup

if TYPE_CHECKING:
    import wasmtime

_WASM_MAGIC = b"\x00asm"
_CORE_VERSION = b"\x01\x00\x00\x00"
#: Denied feature -> the wasmtime Config switches that turn it off (relaxed SIMD needs SIMD).
_FEATURE_SWITCHES: dict[str, tuple[str, ...]] = {
    "simd": ("wasm_simd", "wasm_relaxed_simd"),
    "relaxed-simd": ("wasm_relaxed_simd",),
    "threads": ("wasm_threads",),
    "bulk-memory": ("wasm_bulk_memory",),
    "multi-memory": ("wasm_multi_memory",),
    "memory64": ("wasm_memory64",),
    "tail-call": ("wasm_tail_call",),
}
#: Features wasmtime cannot switch off here (disabling reference-types aborts the process).
_UNCHECKABLE = frozenset({"reference-types"})


def check_module(doc: Document, spec: WasmAgent, lookup: ModuleLookup) -> tuple[list[Diagnostic], str | None]:
    """All module diagnostics, and the module's sha256 when its bytes were read."""
    where = doc.value_pos(("module",))
    if lookup.data is None:
        return [_lookup_problem(doc, spec, lookup, where)], None
    data = lookup.data
    digest = hashlib.sha256(data).hexdigest()
    found = _digest(doc, spec, digest)
    if len(data) > spec.resource_limits.max_module_size:
        found.append(_too_large(doc, spec, len(data), where))
    structural = _header(doc, spec, data, where)
    if structural is not None:
        return [*found, structural], digest
    found += _structure(doc, spec, data, where)
    return found, digest


def _lookup_problem(doc: Document, spec: WasmAgent, lookup: ModuleLookup, where: Pos) -> Diagnostic:
    if lookup.problem == "escape":
        return diagnostic("CX402", doc.file, f"module {spec.module!r} points outside the repository root"
                          f"{' (' + lookup.detail + ')' if lookup.detail else ''}", where,
                          hint="keep .wasm files inside the repository and use a relative path (e.g. ../wasm/x.wasm)")
    if lookup.problem == "too_large":
        return _too_large(doc, spec, lookup.size or 0, where)
    if lookup.problem == "unreadable":
        return diagnostic("CX101", doc.file, f"module {lookup.path!r} could not be read: {lookup.detail}", where)
    return diagnostic("CX401", doc.file, f"module {spec.module!r} not found (looked for {lookup.path!r})", where,
                      hint="the path is relative to this agent file; build the module or fix the path")


def _too_large(doc: Document, spec: WasmAgent, size: int, where: Pos) -> Diagnostic:
    limit = spec.resource_limits.max_module_size
    return diagnostic("CX404", doc.file, f"module is {size:,} bytes; resource_limits.max_module_size is {limit:,}",
                      where, hint="shrink the module (strip debug info, wasm-opt) or raise max_module_size")


def _digest(doc: Document, spec: WasmAgent, digest: str) -> list[Diagnostic]:
    if spec.sha256 is None:
        return [diagnostic("CX411", doc.file, "module has no sha256 pin", doc.value_pos(("module",)),
                           hint=f"pin it: sha256: {digest}")]
    if spec.sha256 != digest:
        return [diagnostic("CX405", doc.file, f"module sha256 is {digest}, the pin says {spec.sha256}",
                           doc.value_pos(("sha256",)),
                           hint=f"if the module changed on purpose, update the pin: sha256: {digest}")]
    return []


def _header(doc: Document, spec: WasmAgent, data: bytes, where: Pos) -> Diagnostic | None:
    if data[:4] != _WASM_MAGIC:
        return diagnostic("CX403", doc.file, f"{spec.module!r} is not a WebAssembly module (no \\0asm header)",
                          where, hint="point module at the compiled .wasm (not the .wat source or another file)")
    if data[4:8] != _CORE_VERSION:
        return diagnostic("CX403", doc.file, f"{spec.module!r} is not a core WebAssembly module "
                          "(a component or an unknown version)", where,
                          hint="Caxton ABI v1 runs core modules; build for wasm32 without the component model")
    return None


def _structure(doc: Document, spec: WasmAgent, data: bytes, where: Pos) -> list[Diagnostic]:
    """Validity, denied features, imports, exports and memories of a module with a good header."""
    full = _wasmtime_available()
    if full:
        invalid = _wasmtime_invalid(doc, data, where)
        if invalid is not None:
            return [invalid]
    try:
        interface = wasmbin.read_interface(data)
    except wasmbin.MalformedWasm as error:
        return [diagnostic("CX403", doc.file, f"invalid WebAssembly: {error}", where,
                           hint="rebuild the module; 'wasm-validate' or 'wasm-tools validate' show details")]
    found = _denied_features(doc, spec, data, where) if full else _declared_features(doc, spec, interface, data, where)
    found += _imports(doc, spec, interface, where)
    found += _exports(doc, interface, where)
    found += _memories(doc, spec, interface, where)
    return found


def _wasmtime_available() -> bool:
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        return False
    return True


def _wasmtime_invalid(doc: Document, data: bytes, where: Pos) -> Diagnostic | None:
    """wasmtime's verdict on the whole module, function bodies included (all features on)."""
    import wasmtime

    try:
        wasmtime.Module.validate(_engine(frozenset()), data)
    except wasmtime.WasmtimeError as error:
        return diagnostic("CX403", doc.file, f"invalid WebAssembly: {_first_line(error)}", where,
                          hint="rebuild the module; 'wasm-validate' or 'wasm-tools validate' show details")
    return None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@atexit.register
def _release_at_exit() -> None:
    """Free the cached engines while wasmtime's library is still loaded (a finalizer at
    interpreter teardown would call into the unloaded library and print a traceback)."""
    _engine.cache_clear()


@lru_cache(maxsize=16)
def _engine(disabled: frozenset[str]) -> wasmtime.Engine:
    import wasmtime

    config = wasmtime.Config()
    for switch in disabled:
        setattr(config, switch, False)
    return wasmtime.Engine(config)


def _switches(features: Sequence[str]) -> frozenset[str]:
    return frozenset(s for f in features for s in _FEATURE_SWITCHES.get(f, ()))


def _denied_features(doc: Document, spec: WasmAgent, data: bytes, where: Pos) -> list[Diagnostic]:
    import wasmtime

    denied = list(spec.security_policy.denied_features)
    found = [diagnostic("CX415", doc.file, f"denied feature {f!r} cannot be checked offline", where,
                        hint="the sandbox enforces it at load time") for f in denied if f in _UNCHECKABLE]
    try:
        wasmtime.Module.validate(_engine(_switches(denied)), data)
        return found
    except wasmtime.WasmtimeError:
        pass
    for feature in denied:
        try:
            wasmtime.Module.validate(_engine(_switches([feature])), data)
        except wasmtime.WasmtimeError as error:
            found.append(_feature_used(doc, feature, _first_line(error), where))
    return found


def _feature_used(doc: Document, feature: str, detail: str, where: Pos) -> Diagnostic:
    return diagnostic("CX410", doc.file, f"module uses the denied feature {feature!r}: {detail}", where,
                      hint=f"rebuild without {feature}, or remove it from security_policy.denied_features")


def _declared_features(
    doc: Document, spec: WasmAgent, interface: wasmbin.Interface, data: bytes, where: Pos
) -> list[Diagnostic]:
    """Without wasmtime: the denied features the declarations and instructions show, and a note."""
    memories = interface.memories
    shown = {
        "simd": "declares v128 in a function type or an imported global" if "v128" in interface.value_types else "",
        "threads": "declares a shared memory" if any(m.shared for m in memories) else "",
        "memory64": "declares a 64-bit memory" if any(m.is64 for m in memories) else "",
        "multi-memory": f"declares {len(memories)} memories" if len(memories) > 1 else "",
    }
    used = wasmcode.features_used(data)
    for feature in used or ():
        shown[feature] = shown.get(feature) or f"a function body uses {feature} instructions or locals"
    denied = spec.security_policy.denied_features
    found = [_feature_used(doc, f, shown[f], where) for f in denied if shown.get(f)]
    read = "from declarations and instructions" if used is not None else \
        "from declarations only (a function body holds an instruction this reader does not know)"
    found.append(diagnostic(
        "CX416", doc.file, "module checked without wasmtime: function bodies were not validated"
        + (f"; denied features ({', '.join(denied)}) were read {read}" if denied else ""), where,
        hint="install the engine (pip install 'caxton[engine]') for the full check; the engine always "
             "runs it before deploying"))
    return found


def _allowed(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _imports(doc: Document, spec: WasmAgent, interface: wasmbin.Interface, where: Pos) -> list[Diagnostic]:
    policy = spec.security_policy
    found = []
    for item in interface.imports:
        full = f"{item.module}.{item.name}"
        if item.module == abi.WASI_MODULE:
            if not (policy.file_system_access or policy.network_access):
                found.append(diagnostic(
                    "CX412", doc.file, f"module imports WASI ({full}) but the policy grants no file or network access",
                    where, hint="set security_policy.file_system_access or network_access: true, or build without WASI"))
            continue
        if not _allowed(full, policy.allowed_imports):
            found.append(diagnostic("CX406", doc.file, f"import {full!r} is not allowed by security_policy", where,
                                    hint=f"add '{full}' to security_policy.allowed_imports if the agent needs it"))
            continue
        if item.module == abi.HOST_MODULE:
            expected = abi.HOST_FUNCTIONS.get(item.name)
            if expected is None or item.signature is None or item.signature != expected:
                found.append(diagnostic(
                    "CX413", doc.file, f"import {full!r} does not match a host function of ABI v{abi.ABI_VERSION}",
                    where, hint="the host provides: " + ", ".join(
                        f"{abi.HOST_MODULE}.{n}{_show_sig(s)}" for n, s in abi.HOST_FUNCTIONS.items())))
    return found


def _show_sig(signature: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    params, results = signature
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def _exports(doc: Document, interface: wasmbin.Interface, where: Pos) -> list[Diagnostic]:
    kinds = {item.name: item.kind for item in interface.exports}
    found = []
    for name, kind in abi.REQUIRED_EXPORTS.items():
        if name not in kinds:
            found.append(diagnostic("CX408", doc.file, f"required export {name!r} ({kind}) is missing", where,
                                    hint="see docs/wasm-abi.md for the exports of ABI v1"))
    for name, kind in {**abi.REQUIRED_EXPORTS, abi.EXPORT_INIT: "func"}.items():
        actual = kinds.get(name)
        if actual is None:
            continue
        if actual != kind:
            found.append(diagnostic("CX409", doc.file, f"export {name!r} must be a {kind}", where,
                                    hint="see docs/wasm-abi.md"))
        elif kind == "func" and interface.signatures[name] != abi.EXPORT_SIGNATURES[name]:
            found.append(diagnostic(
                "CX409", doc.file, f"export {name!r} has signature {_show_sig(interface.signatures[name])}, "
                f"ABI v{abi.ABI_VERSION} needs {_show_sig(abi.EXPORT_SIGNATURES[name])}", where,
                hint="see docs/wasm-abi.md"))
    return found


def _memories(doc: Document, spec: WasmAgent, interface: wasmbin.Interface, where: Pos) -> list[Diagnostic]:
    found = []
    max_pages = spec.security_policy.max_memory_pages
    max_bytes = spec.resource_limits.max_memory_bytes
    for memory in interface.memories:
        low, high = memory.min, memory.max
        if low > max_pages or low * abi.WASM_PAGE_BYTES > max_bytes:
            found.append(diagnostic(
                "CX407", doc.file, f"module needs {low} memory pages ({low * abi.WASM_PAGE_BYTES:,} bytes) at start; "
                f"the policy allows {max_pages} pages and {max_bytes:,} bytes", where,
                hint="lower the module's initial memory or raise security_policy.max_memory_pages "
                     "and resource_limits.max_memory_bytes"))
        elif high is not None and high > max_pages:
            found.append(diagnostic(
                "CX414", doc.file, f"module declares up to {high} memory pages; security_policy.max_memory_pages "
                f"is {max_pages}", where, hint="growth past the policy fails at run time (memory.grow returns -1)"))
    return found
