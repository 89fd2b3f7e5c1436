"""Compile WASM agent modules, cache them, and check them against the ABI and the policy.

``load_module`` is the only way a module enters the sandbox: size limit, compile
(with the engine for the policy's denied features), imports against the policy's
allow-list and the host functions Caxton provides, required exports and their
signatures, and the initial memory against ``max_memory_pages``.

What gets compiled, and how (the deploy budget is 200 ms for a ~1 MB module):

- only the exports the host calls: every exported function costs an entry
  trampoline compiled by Cranelift, so the export section is trimmed to the
  ABI functions (and the non-function exports) first (``caxton.rules.wasmbin``);
  ``LoadedModule.exports`` still lists every export of the original module;
- by Cranelift (optimizing) when the code section is at most
  ``WINCH_ABOVE_CODE_BYTES``, else by Winch (baseline; ~8x faster to compile,
  slower code). A module Winch refuses is compiled by Cranelift instead.

Compiled modules are cached by (compiler, denied features, sha256) in process;
``set_cache_dir`` adds an on-disk cache of serialized artifacts (their name
includes the wasmtime version, compiler, denied features and artifact format)
so an engine restart deserializes (tens of microseconds to a few ms) instead
of recompiling. The cache directory must be as trusted as the engine's data
dir: wasmtime runs deserialized code as is. Called by ``caxton.sandbox.runtime``
(re-exported there) and the engine.
"""

from __future__ import annotations

import atexit

import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from caxton.errors import SandboxError
from caxton.sandbox import engines
from caxton.spec import abi
from caxton.spec.agent import SecurityPolicy, WasmResourceLimits
from caxton.rules import wasmbin

#: Module size limit when the caller gives none (the spec's default).
DEFAULT_MAX_MODULE_SIZE: int = WasmResourceLimits().max_module_size

#: Modules with more code than this (bytes of the code section) are compiled by Winch.
#: Cranelift needs ~1 ms of CPU per KB of code, so 64 KB stays well inside the budget.
WINCH_ABOVE_CODE_BYTES: int = 64 * 1024

#: Bumped whenever what goes into a serialized artifact changes (2: ABI exports only).
ARTIFACT_FORMAT = 2

#: Export name -> (params, results) every module must match (ABI v1).
EXPORT_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # (params, results)
    abi.EXPORT_ALLOC: (("i32",), ("i32",)),
    abi.EXPORT_HANDLE: (("i32", "i32"), ("i64",)),
    abi.EXPORT_INIT: ((), ()),
}


@dataclass(frozen=True)
class LoadedModule:
    """A compiled, checked module ready to be instantiated by a runtime."""

    sha256: str
    size: int
    imports: tuple[str, ...]
    exports: dict[str, str]
    module: wasmtime.Module = field(repr=False, compare=False)
    engine: engines.SandboxEngine = field(repr=False, compare=False)
    min_memory_pages: int = 0
    uses_wasi: bool = False
    from_cache: str = "none"  # none | memory | disk
    compiler: str = engines.CRANELIFT  # cranelift | winch


Signature = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Shape:
    """What the checks need from a compiled module, read once."""

    imports: tuple[tuple[str, str, Signature | None], ...]
    exports: dict[str, str]
    abi_signatures: dict[str, Signature | None]
    memory_pages: int


_MEMORY_CACHE: dict[tuple[tuple[str, ...], str], tuple[engines.SandboxEngine, wasmtime.Module, Shape]] = {}
_CACHE_LOCK = threading.Lock()
_cache_dir: Path | None = None


@atexit.register
def _release_at_exit() -> None:
    """Free cached modules and engines while wasmtime's library is still loaded (at interpreter
    teardown their finalizers would call into an unloaded library and print tracebacks)."""
    engines.shutdown_tickers()
    with _CACHE_LOCK:
        _MEMORY_CACHE.clear()
    engines.forget_engines()


def set_cache_dir(path: str | os.PathLike[str] | None) -> None:
    """Keep serialized compiled modules under ``path`` (None turns the disk cache off)."""
    global _cache_dir
    if path is None:
        _cache_dir = None
        return
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    _cache_dir = directory


def clear_memory_cache() -> None:
    """Forget every compiled module held in process (tests, benchmarks)."""
    with _CACHE_LOCK:
        _MEMORY_CACHE.clear()


def load_module(
    wasm: bytes, policy: SecurityPolicy, *, max_module_size: int | None = None
) -> LoadedModule:
    """Compile (or fetch from cache) and check a module; raises SandboxError."""
    limit = DEFAULT_MAX_MODULE_SIZE if max_module_size is None else max_module_size
    _check_size(len(wasm), limit)
    digest = hashlib.sha256(wasm).hexdigest()
    engine, module, shape, source = _compiled(policy.denied_features, digest, wasm)
    imports = _check_imports(shape, policy)
    _check_exports(shape)
    _check_memory(shape, policy)
    return LoadedModule(
        sha256=digest,
        size=len(wasm),
        imports=imports,
        exports=dict(shape.exports),
        module=module,
        engine=engine,
        min_memory_pages=shape.memory_pages,
        uses_wasi=any(name.startswith(abi.WASI_MODULE + ".") for name in imports),
        from_cache=source,
        compiler=engine.compiler,
    )


def choose_compiler(code_bytes: int) -> str:
    """Cranelift for small modules (best code, compiles in milliseconds), Winch for large ones."""
    if code_bytes > WINCH_ABOVE_CODE_BYTES and engines.WINCH_AVAILABLE:
        return engines.WINCH
    return engines.CRANELIFT


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise SandboxError(
            f"WASM module is {size} bytes, over the limit of {limit} bytes",
            hint="shrink the module (strip debug info, optimize for size) or raise "
            "resource_limits.max_module_size",
            details={"size": size, "limit": limit},
        )


# --- compile + cache ----------------------------------------------------------


def _compiled(
    denied: Sequence[str], digest: str, wasm: bytes
) -> tuple[engines.SandboxEngine, wasmtime.Module, Shape, str]:
    engine = engines.get_engine(denied, compiler=choose_compiler(wasmbin.code_size(wasm)))
    try:
        return _compiled_by(engine, digest, wasm)
    except SandboxError:
        if engine.compiler == engines.CRANELIFT:
            raise
    # Winch refused the module (an instruction it does not implement, or an invalid module):
    # Cranelift compiles it or gives the error; remember its result under Winch's key too.
    fallback = _compiled_by(engines.get_engine(denied), digest, wasm)
    with _CACHE_LOCK:
        _MEMORY_CACHE[(engine.cache_key, digest)] = fallback[:3]
    return fallback


def _compiled_by(
    engine: engines.SandboxEngine, digest: str, wasm: bytes
) -> tuple[engines.SandboxEngine, wasmtime.Module, Shape, str]:
    key = (engine.cache_key, digest)
    with _CACHE_LOCK:
        cached = _MEMORY_CACHE.get(key)
    if cached is not None:
        return (*cached, "memory")
    layout = _layout(wasm)  # parsing 2,400 exports takes a few ms: only on a miss
    module = _from_disk(engine, digest)
    source = "disk"
    if module is None:
        module = _compile(engine, _host_view(wasm, layout))
        _to_disk(engine, digest, module)
        source = "none"
    shape = _shape(module, layout)
    with _CACHE_LOCK:
        _MEMORY_CACHE[key] = (engine, module, shape)
    return engine, module, shape, source


def _layout(wasm: bytes) -> wasmbin.Layout | None:
    try:
        return wasmbin.read_layout(wasm)
    except wasmbin.MalformedWasm:
        return None  # compile the bytes as they are; wasmtime reports what is wrong


def _host_view(wasm: bytes, layout: wasmbin.Layout | None) -> bytes:
    """The module with only the function exports the sandbox calls (see the module docstring)."""
    if layout is None:
        return wasm
    return wasmbin.keep_exports(wasm, layout, lambda item: item.kind != "func" or item.name in EXPORT_SIGNATURES)


def _compile(engine: engines.SandboxEngine, wasm: bytes) -> wasmtime.Module:
    try:
        return wasmtime.Module(engine.engine, wasm)
    except wasmtime.WasmtimeError as exc:
        raise SandboxError(
            f"WASM module does not compile: {_one_line(str(exc))}",
            hint="check the module with `wasm-validate` or rebuild it; features denied by "
            f"the policy ({', '.join(engine.key) or 'none'}) are refused",
            details={"error": str(exc)},
        ) from None


def _artifact_path(engine: engines.SandboxEngine, digest: str) -> Path | None:
    if _cache_dir is None:
        return None
    identity = (wasmtime_version(), engine.cache_key, ARTIFACT_FORMAT)
    fingerprint = hashlib.sha256(repr(identity).encode()).hexdigest()[:16]
    return _cache_dir / f"{digest}-{fingerprint}.cwasm"


def _from_disk(engine: engines.SandboxEngine, digest: str) -> wasmtime.Module | None:
    path = _artifact_path(engine, digest)
    if path is None or not path.is_file():
        return None
    try:
        return wasmtime.Module.deserialize(engine.engine, path.read_bytes())
    except (OSError, wasmtime.WasmtimeError):
        return None  # stale or corrupt artifact: recompile and overwrite it


def _to_disk(engine: engines.SandboxEngine, digest: str, module: wasmtime.Module) -> None:
    path = _artifact_path(engine, digest)
    if path is None:
        return
    try:
        data = module.serialize()
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError:
        return  # the cache is an optimisation; a full disk must not fail a deploy


@functools.cache
def wasmtime_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- checks ------------------------------------------------------------------------


def _shape(module: wasmtime.Module, layout: wasmbin.Layout | None) -> Shape:
    """Imports, ABI signatures and memory from the compiled module; exports from the original bytes."""
    imports = tuple((item.module, item.name or "", _signature(item.type)) for item in module.imports)
    exports: dict[str, str] = {}
    signatures: dict[str, Signature | None] = {}
    pages = 0
    for item in module.exports:
        name, ty = item.name, item.type
        exports[name] = _kind(ty)
        if name in EXPORT_SIGNATURES:
            signatures[name] = _signature(ty)
        if name == abi.EXPORT_MEMORY and isinstance(ty, wasmtime.MemoryType):
            pages = ty.limits.min
    if layout is not None:
        exports = {item.name: item.kind for item in layout.exports}
    return Shape(imports=imports, exports=exports, abi_signatures=signatures, memory_pages=pages)


def _check_imports(shape: Shape, policy: SecurityPolicy) -> tuple[str, ...]:
    names = tuple(f"{module}.{name}" for module, name, _ in shape.imports)
    problems = [
        problem
        for (module, name, signature), qualified in zip(shape.imports, names)
        if (problem := _import_problem(module, name, signature, qualified, policy))
    ]
    if problems:
        raise SandboxError(
            "WASM module has imports the sandbox refuses: " + "; ".join(problems),
            hint="Caxton links only " + ", ".join(abi.DEFAULT_ALLOWED_IMPORTS) + " (and WASI "
            "without preopens when security_policy grants file_system_access or network_access); "
            "rebuild the module without the other imports, or allow a host import in "
            "security_policy.allowed_imports",
            details={"violation": "import", "imports": list(names), "problems": problems},
        )
    return names


def _import_problem(
    module: str, name: str, signature: Signature | None, qualified: str, policy: SecurityPolicy
) -> str | None:
    if module == abi.WASI_MODULE:
        if policy.file_system_access or policy.network_access:
            return None
        return f"{qualified} is WASI, and the policy grants neither file_system_access nor network_access"
    if not _allowed(qualified, policy.allowed_imports):
        return f"{qualified} is not in security_policy.allowed_imports"
    expected = abi.HOST_FUNCTIONS.get(name) if module == abi.HOST_MODULE else None
    if expected is None:
        return f"{qualified} is allowed by the policy but Caxton provides no such host function"
    if signature != expected:
        return f"{qualified} has signature {_show(signature)}, expected {_show(expected)}"
    return None


def _allowed(name: str, allowed: list[str]) -> bool:
    module = name.split(".", 1)[0]
    return name in allowed or f"{module}.*" in allowed


def _check_exports(shape: Shape) -> None:
    problems = [
        f"missing export {name!r} ({kind})"
        for name, kind in abi.REQUIRED_EXPORTS.items()
        if shape.exports.get(name) != kind
    ]
    for name, signature in shape.abi_signatures.items():
        expected = EXPORT_SIGNATURES[name]
        if signature is not None and signature != expected:
            problems.append(f"export {name!r} has signature {_show(signature)}, expected {_show(expected)}")
    if problems:
        raise SandboxError(
            "WASM module does not implement the Caxton ABI v1: " + "; ".join(problems),
            hint="export memory, caxton_alloc(i32) -> i32 and caxton_handle(i32, i32) -> i64 "
            "(optional caxton_init()); see docs/wasm-abi.md",
            details={"exports": shape.exports, "problems": problems},
        )


def _check_memory(shape: Shape, policy: SecurityPolicy) -> None:
    if shape.memory_pages > policy.max_memory_pages:
        raise SandboxError(
            f"WASM module starts with {shape.memory_pages} memory pages, over "
            f"security_policy.max_memory_pages ({policy.max_memory_pages})",
            hint="lower the module's initial memory or raise security_policy.max_memory_pages",
            details={"pages": shape.memory_pages, "max_pages": policy.max_memory_pages},
        )


def _kind(ty: object) -> str:
    if isinstance(ty, wasmtime.FuncType):
        return "func"
    if isinstance(ty, wasmtime.MemoryType):
        return "memory"
    if isinstance(ty, wasmtime.TableType):
        return "table"
    if isinstance(ty, wasmtime.GlobalType):
        return "global"
    return "other"


def _signature(ty: object) -> Signature | None:
    if not isinstance(ty, wasmtime.FuncType):
        return None
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


def _show(sig: Signature | None) -> str:
    if sig is None:
        return "(not a function)"
    params, results = sig
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def _one_line(text: str) -> str:
    """wasmtime's multi-line error chain ("failed to compile", "Caused by: ...") as one line."""
    parts = [line.strip() for line in text.splitlines() if line.strip() and line.strip() != "Caused by:"]
    parts = [part.split(":", 1)[1].strip() if part[:1].isdigit() and ":" in part else part for part in parts]
    return ": ".join(parts) or "unknown error"
