"""Fixtures of the validation tests: throw-away desired-state repositories and WASM modules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

VALID_MD = """---
name: alpha
version: "1.0.0"
system_prompt: |
  You help.
---
Alpha helps.
"""

GOOD_WAT = """(module
  (import "caxton" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 0)))
"""


def wasm(wat: str) -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(wat))


def wasm_agent(module: str = "../wasm/m.wasm", extra: str = "") -> str:
    return f"---\nname: wasm-one\nversion: \"1.0.0\"\nkind: wasm\nmodule: {module}\n{extra}---\n"


def write_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    """A repository with caxton.yaml (so the root is fixed) and the given files."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"caxton.yaml": "agents_dir: agents\n", **files}
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, "utf-8")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    def make(files: dict[str, str | bytes]) -> Path:
        return write_repo(tmp_path / "repo", files)

    return make


@pytest.fixture
def validate_json(run_cli: Any) -> Callable[..., tuple[int, dict[str, Any]]]:
    """Run ``caxton validate ARGS -o json`` and return (exit code, report)."""

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        result = run_cli("validate", *args, "--output", "json")
        return result.code, json.loads(result.out)

    return run
