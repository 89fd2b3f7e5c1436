"""The Caxton WASM ABI, version 1 (documented in docs/wasm-abi.md).

Shared by validation (required exports, default import allow-list) and the
sandbox (what it calls and what it links). Pure constants.
"""

from __future__ import annotations

ABI_VERSION = 1

#: Module name of the host functions Caxton provides.
HOST_MODULE = "caxton"

EXPORT_MEMORY = "memory"
EXPORT_ALLOC = "caxton_alloc"
EXPORT_HANDLE = "caxton_handle"
EXPORT_INIT = "caxton_init"  # optional

#: Exports every agent module must have, with their kind.
REQUIRED_EXPORTS: dict[str, str] = {
    EXPORT_MEMORY: "memory",
    EXPORT_ALLOC: "func",
    EXPORT_HANDLE: "func",
}

#: Signatures (params, results) of the function exports, ``caxton_init`` included when present.
EXPORT_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    EXPORT_ALLOC: (("i32",), ("i32",)),
    EXPORT_HANDLE: (("i32", "i32"), ("i64",)),
    EXPORT_INIT: ((), ()),
}

#: Host imports and their signatures (params, results) in wasm value types.
HOST_FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "log": (("i32", "i32", "i32"), ()),
    "clock_ms": ((), ("i64",)),
}

#: Imports every module may use without listing them.
DEFAULT_ALLOWED_IMPORTS: tuple[str, ...] = tuple(f"{HOST_MODULE}.{name}" for name in HOST_FUNCTIONS)

#: WASI preview-1 module name; only linked when the policy grants file or network access.
WASI_MODULE = "wasi_snapshot_preview1"

WASM_PAGE_BYTES = 65536

#: Levels of ``caxton.log``.
LOG_LEVELS: dict[int, str] = {0: "debug", 1: "info", 2: "warn", 3: "error"}

#: A reply object with this top-level key is the agent's own failure (reason ``agent_error``).
REPLY_ERROR_KEY = "error"
