"""Helpers of the engine tests: agent specs, deploy bodies, tiny WASM modules."""

from __future__ import annotations

import base64
from typing import Any

import wasmtime

from tests.support.paths import EXAMPLES

SCORER_WASM = (EXAMPLES / "wasm" / "scorer.wasm").read_bytes()

#: The handle/alloc/memory boilerplate of a minimal ABI v1 module, with a handle body to fill in.
_MODULE = """
(module
  {imports}
  (memory (export "memory") {pages})
  (data (i32.const 0) "{{\\"ok\\":true}}")
  (func (export "caxton_alloc") (param $len i32) (result i32) (i32.const 1024))
  {funcs}
  {init}
  (func (export "caxton_handle") (param $ptr i32) (param $len i32) (result i64)
    {handle}
    (i64.const 11)))
"""


def wat_module(handle: str = "", *, init: str | None = None, imports: str = "", funcs: str = "",
               pages: int = 1) -> bytes:
    """Compile a tiny agent whose reply is {"ok":true} after running ``handle``."""
    init_func = f'(func (export "caxton_init") {init})' if init is not None else ""
    text = _MODULE.format(imports=imports, pages=pages, funcs=funcs, init=init_func, handle=handle)
    return bytes(wasmtime.wat2wasm(text))


def wasm_spec(name: str, *, version: str = "1.0.0", **limits: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "version": version, "kind": "wasm", "module": f"{name}.wasm"}
    if limits:
        spec["resource_limits"] = limits
    return spec


def config_spec(name: str, *, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "system_prompt": f"You are {name}.",
            "user_prompt_template": "Request: {{ request }}", **extra}


def deploy_body(spec: dict[str, Any], module: bytes | None = None, **source: Any) -> dict[str, Any]:
    return {"spec": spec, "module": base64.b64encode(module).decode() if module is not None else None,
            "source": source}
