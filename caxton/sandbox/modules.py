"""Compile WASM agent modules, cache them, and check them against the ABI and the policy.

``load_module`` is the only way a module enters the sandbox: size limit, compile
(with the engine for the policy's denied features), imports against the policy's
allow-list and the host functions Caxton provides, required exports and their
signatures, and the initial memory against ``max_memory_pages``.

Compiled modules are cached by (engine, sha256) in process; ``set_cache_dir``
adds an on-disk cache of serialized artifacts so an engine restart deserializes
(tens of microseconds to a few ms) instead of recompiling. The cache directory
must be as trusted as the engine's data dir: wasmtime runs deserialized code
as is. Called by ``caxton.sandbox.runtime`` (re-exported there) and the engine.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from caxton.errors import SandboxError
from caxton.sandbox import engines
from caxton.spec import abi
from caxton.spec.agent import SecurityPolicy, WasmResourceLimits

#: Module size limit when the caller gives none (the spec's default).
DEFAULT_MAX_MODULE_SIZE: int = WasmResourceLimits().max_module_size

#: Export name -> (params, results) every module must match (ABI v1).
EXPORT_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
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


_MEMORY_CACHE: dict[tuple[tuple[str, ...], str], wasmtime.Module] = {}
_CACHE_LOCK = threading.Lock()
_cache_dir: Path | None = None


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
    engine = engines.get_engine(policy.denied_features)
    module, source = _compiled(engine, digest, wasm)
    imports = _check_imports(module, policy)
    exports = _check_exports(module)
    pages = _check_memory(module, policy)
    return LoadedModule(
        sha256=digest,
        size=len(wasm),
        imports=imports,
        exports=exports,
        module=module,
        engine=engine,
        min_memory_pages=pages,
        uses_wasi=any(name.startswith(abi.WASI_MODULE + ".") for name in imports),
        from_cache=source,
    )


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise SandboxError(
            f"WASM module is {size} bytes, over the limit of {limit} bytes",
            hint="shrink the module (strip debug info, optimize for size) or raise "
            "resource_limits.max_module_size",
            details={"size": size, "limit": limit},
        )


# --- compile + cache ----------------------------------------------------------


def _compiled(engine: engines.SandboxEngine, digest: str, wasm: bytes) -> tuple[wasmtime.Module, str]:
    key = (engine.key, digest)
    with _CACHE_LOCK:
        cached = _MEMORY_CACHE.get(key)
    if cached is not None:
        return cached, "memory"
    module = _from_disk(engine, digest)
    source = "disk"
    if module is None:
        module = _compile(engine, wasm)
        _to_disk(engine, digest, module)
        source = "none"
    with _CACHE_LOCK:
        _MEMORY_CACHE[key] = module
    return module, source


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
    fingerprint = hashlib.sha256(repr((_wasmtime_version(), engine.key)).encode()).hexdigest()[:16]
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


def _wasmtime_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- checks ------------------------------------------------------------------------


def _check_imports(module: wasmtime.Module, policy: SecurityPolicy) -> tuple[str, ...]:
    names: list[str] = []
    problems: list[str] = []
    for item in module.imports:
        name = f"{item.module}.{item.name}"
        names.append(name)
        problem = _import_problem(item, name, policy)
        if problem:
            problems.append(problem)
    if problems:
        raise SandboxError(
            "WASM module has imports the sandbox refuses: " + "; ".join(problems),
            hint="Caxton links only " + ", ".join(abi.DEFAULT_ALLOWED_IMPORTS) + " (and WASI "
            "without preopens when security_policy grants file_system_access or network_access); "
            "rebuild the module without the other imports, or allow a host import in "
            "security_policy.allowed_imports",
            details={"imports": names, "problems": problems},
        )
    return tuple(names)


def _import_problem(item: wasmtime.ImportType, name: str, policy: SecurityPolicy) -> str | None:
    if item.module == abi.WASI_MODULE:
        if policy.file_system_access or policy.network_access:
            return None
        return f"{name} is WASI, and the policy grants neither file_system_access nor network_access"
    if not _allowed(name, policy.allowed_imports):
        return f"{name} is not in security_policy.allowed_imports"
    expected = abi.HOST_FUNCTIONS.get(item.name or "") if item.module == abi.HOST_MODULE else None
    if expected is None:
        return f"{name} is allowed by the policy but Caxton provides no such host function"
    actual = _signature(item.type)
    if actual != expected:
        return f"{name} has signature {_show(actual)}, expected {_show(expected)}"
    return None


def _allowed(name: str, allowed: list[str]) -> bool:
    module = name.split(".", 1)[0]
    return name in allowed or f"{module}.*" in allowed


def _check_exports(module: wasmtime.Module) -> dict[str, str]:
    exports = {item.name: _kind(item.type) for item in module.exports}
    problems: list[str] = []
    for name, kind in abi.REQUIRED_EXPORTS.items():
        if exports.get(name) != kind:
            problems.append(f"missing export {name!r} ({kind})")
    for item in module.exports:
        expected = EXPORT_SIGNATURES.get(item.name)
        if expected is not None and isinstance(item.type, wasmtime.FuncType):
            actual = _signature(item.type)
            if actual != expected:
                problems.append(f"export {item.name!r} has signature {_show(actual)}, expected {_show(expected)}")
    if problems:
        raise SandboxError(
            "WASM module does not implement the Caxton ABI v1: " + "; ".join(problems),
            hint="export memory, caxton_alloc(i32) -> i32 and caxton_handle(i32, i32) -> i64 "
            "(optional caxton_init()); see docs/wasm-abi.md",
            details={"exports": exports, "problems": problems},
        )
    return exports


def _check_memory(module: wasmtime.Module, policy: SecurityPolicy) -> int:
    pages = 0
    for item in module.exports:
        if item.name == abi.EXPORT_MEMORY and isinstance(item.type, wasmtime.MemoryType):
            pages = item.type.limits.min
    if pages > policy.max_memory_pages:
        raise SandboxError(
            f"WASM module starts with {pages} memory pages, over security_policy.max_memory_pages "
            f"({policy.max_memory_pages})",
            hint="lower the module's initial memory or raise security_policy.max_memory_pages",
            details={"pages": pages, "max_pages": policy.max_memory_pages},
        )
    return pages


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


def _signature(ty: object) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    if not isinstance(ty, wasmtime.FuncType):
        return None
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


def _show(sig: tuple[tuple[str, ...], tuple[str, ...]] | None) -> str:
    if sig is None:
        return "(not a function)"
    params, results = sig
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def _one_line(text: str) -> str:
    """wasmtime's multi-line error chain ("failed to compile", "Caused by: ...") as one line."""
    parts = [line.strip() for line in text.splitlines() if line.strip() and line.strip() != "Caused by:"]
    parts = [part.split(":", 1)[1].strip() if part[:1].isdigit() and ":" in part else part for part in parts]
    return ": ".join(parts) or "unknown error"
