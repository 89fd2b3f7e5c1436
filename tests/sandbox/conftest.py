"""Fixtures of the sandbox tests: WAT modules compiled on demand and started runtimes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from caxton.sandbox import engines, modules, runtime
from caxton.spec.agent import SecurityPolicy, WasmResourceLimits

MODULES = Path(__file__).parent / "modules"
SCORER = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "wasm" / "scorer.wasm"

RuntimeFactory = Callable[..., runtime.WasmAgentRuntime]


@cache
def compile_wat(name: str) -> bytes:
    """The binary of tests/sandbox/modules/NAME.wat."""
    return bytes(wasmtime.wat2wasm((MODULES / f"{name}.wat").read_text()))


@pytest.fixture
def wat() -> Callable[[str], bytes]:
    return compile_wat


@pytest.fixture(scope="session", autouse=True)
def _stop_tickers() -> Iterator[None]:
    yield
    engines.shutdown_tickers()


@pytest.fixture(autouse=True)
def _no_disk_cache() -> Iterator[None]:
    """Engines started by other test areas point the process-wide disk cache at their data dir."""
    runtime.set_cache_dir(None)
    yield
    runtime.set_cache_dir(None)


@pytest.fixture(params=[engines.CRANELIFT, engines.WINCH])
def each_compiler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with every module compiled by Cranelift, once by Winch."""
    compiler: str = request.param
    if compiler == engines.WINCH and not engines.WINCH_AVAILABLE:
        pytest.skip("Winch has no backend for this CPU")
    monkeypatch.setattr(modules, "WINCH_ABOVE_CODE_BYTES", -1 if compiler == engines.WINCH else 1 << 62)
    return compiler


@pytest.fixture
def make_runtime() -> Iterator[RuntimeFactory]:
    """Build (and by default start) runtimes; every one is stopped after the test."""
    made: list[runtime.WasmAgentRuntime] = []

    def make(wasm: bytes, *, agent: str = "agent", start: bool = True, policy: SecurityPolicy | None = None,
             logs: list[tuple[str, str]] | None = None, **kwargs: Any) -> runtime.WasmAgentRuntime:
        options = {key: kwargs.pop(key) for key in list(kwargs)
                   if key in WasmResourceLimits.model_fields and key != "pool_size"}  # pool_size: the runtime's
        limits = WasmResourceLimits(**options)
        policy = policy or SecurityPolicy()
        module = runtime.load_module(wasm, policy, max_module_size=limits.max_module_size)
        sink = (lambda level, text: logs.append((level, text))) if logs is not None else None
        rt = runtime.WasmAgentRuntime(module, limits, policy, agent=agent, revision=1, log=sink, **kwargs)
        made.append(rt)
        if start:
            rt.start()
        return rt

    yield make
    for rt in made:
        rt.stop()


@pytest.fixture
def good(make_runtime: RuntimeFactory) -> runtime.WasmAgentRuntime:
    """A well-behaved agent (the quickstart scorer) that must keep answering."""
    return make_runtime(SCORER.read_bytes(), agent="scorer")


@pytest.fixture
def assert_serving(good: runtime.WasmAgentRuntime) -> Callable[[], None]:
    """Check that the good runtime answers correctly, every time it is asked."""

    def check(times: int = 3) -> None:
        for i in range(times):
            envelope = {"message": "still there?", "i": i}
            size = len(json.dumps(envelope, separators=(",", ":")).encode())
            assert good.handle(envelope) == {"agent": "scorer", "score": size}

    return check
