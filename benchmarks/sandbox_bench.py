"""WASM sandbox figures: deploy of ~1 MB modules and in-process message throughput.

Deploy = load_module (size check, sha256, compile, import/export checks) + start
(instantiate + caxton_init), measured three ways: cold (nothing cached), after an
engine restart (serialized artifact on disk), and a redeploy (compiled module in
process). Two module shapes: a 1 MB data segment, and ~1 MB of code.
Throughput = WasmAgentRuntime.handle with the quickstart scorer (JSON encode,
fuel + deadline, alloc, copy in, handle, copy out, JSON decode, metrics).

Run: .venv/bin/python benchmarks/sandbox_bench.py [--quick]
Prints medians over several runs; nothing here is asserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caxton.sandbox import engines, modules, runtime
from caxton.spec.agent import SecurityPolicy, WasmResourceLimits

ROOT = Path(__file__).resolve().parents[1]
SCORER = ROOT / "examples" / "quickstart" / "wasm" / "scorer.wasm"
ABI = (
    '(func (export "caxton_alloc") (param i32) (result i32) (i32.const 1048576))'
    '(func (export "caxton_handle") (param i32 i32) (result i64)'
    " (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32)) (i64.extend_i32_u (local.get 1))))"
)
QUICK = "--quick" in sys.argv
RUNS = 3 if QUICK else 5
CALLS = 5_000 if QUICK else 20_000


def data_module(size: int = 1_000_000) -> bytes:
    """A module with a ~1 MB data segment (a lookup table, an embedded model...)."""
    blob = "".join(f"\\{(i * 7) % 251:02x}" for i in range(size))
    return bytes(wasmtime.wat2wasm(f'(module (memory (export "memory") 32) (data (i32.const 0) "{blob}") {ABI})'))


def code_module(functions: int = 2400, statements: int = 25) -> bytes:
    """A module with ~1 MB of code: many functions of integer arithmetic."""
    parts = ['(module (memory (export "memory") 32)', ABI]
    for f in range(functions):
        body = " ".join(
            f"(local.set 1 (i32.add (i32.mul (local.get 1) (i32.const {k + f})) (i32.xor (local.get 0) "
            f"(i32.const {k * 7 + 1}))))"
            for k in range(statements)
        )
        parts.append(f'(func (export "f{f}") (param i32) (result i32) (local i32) {body} (local.get 1))')
    parts.append(")")
    return bytes(wasmtime.wat2wasm("\n".join(parts)))


def deploy(wasm: bytes) -> float:
    """Seconds for load_module + start of one runtime (stopped afterwards)."""
    policy, limits = SecurityPolicy(), WasmResourceLimits(max_memory_bytes=64 * 1024 * 1024)
    started = time.perf_counter()
    module = runtime.load_module(wasm, policy, max_module_size=limits.max_module_size)
    rt = runtime.WasmAgentRuntime(module, limits, policy, agent="bench-deploy", revision=1)
    rt.start()
    elapsed = time.perf_counter() - started
    rt.stop()
    return elapsed


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} ms (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})"


def bench_deploy(name: str, wasm: bytes, cache_dir: Path) -> None:
    cold, restart, redeploy = [], [], []
    for _ in range(RUNS):
        for stale in cache_dir.glob("*.cwasm"):
            stale.unlink()
        modules.clear_memory_cache()
        cold.append(deploy(wasm))  # compiles, writes the artifact
        modules.clear_memory_cache()
        restart.append(deploy(wasm))  # deserializes the artifact
        redeploy.append(deploy(wasm))  # in-process cache
    print(f"deploy {name} ({len(wasm) / 1e6:.2f} MB)")
    print(f"  cold (validate + compile + instantiate): {median_ms(cold)}")
    print(f"  after engine restart (disk cache):       {median_ms(restart)}")
    print(f"  redeploy (in-process cache):             {median_ms(redeploy)}")


def throughput(threads: int, pool_size: int, cpu: list[float] | None = None) -> float:
    """Messages per second (wall clock) through handle() from `threads` threads.

    When ``cpu`` is given, appends the process CPU seconds per call (less sensitive
    to other jobs on the machine than the wall clock).
    """
    policy = SecurityPolicy()
    module = runtime.load_module(SCORER.read_bytes(), policy)
    rt = runtime.WasmAgentRuntime(module, WasmResourceLimits(), policy, agent="bench-calls", revision=1,
                                  pool_size=pool_size)
    rt.start()
    per_thread = CALLS // threads
    envelope = {"message": "score me", "conversation_id": "c-1", "from": "bench"}

    def work() -> None:
        for _ in range(per_thread):
            rt.handle(envelope)

    for _ in range(500):  # warm-up
        rt.handle(envelope)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    started, cpu_started = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.append((time.process_time() - cpu_started) / (per_thread * threads))
    rt.stop()
    return per_thread * threads / elapsed


def bench_calls(label: str, run: Callable[[], float]) -> None:
    samples = [run() for _ in range(RUNS)]
    median = statistics.median(samples)
    print(f"  {label}: {median:9,.0f} calls/s median ({1e6 / median:.1f} us/call; "
          f"min {min(samples):,.0f}, max {max(samples):,.0f})")


def main() -> None:
    print(f"wasmtime {modules.wasmtime_version()}, {RUNS} runs, {CALLS:,} calls per throughput run, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        runtime.set_cache_dir(tmp)
        bench_deploy("data-heavy", data_module(), Path(tmp))
        bench_deploy("code-heavy", code_module(), Path(tmp))
        runtime.set_cache_dir(None)
    print("in-process calls (quickstart scorer)")
    cpu: list[float] = []
    bench_calls("1 thread,  pool 1", lambda: throughput(1, 1, cpu))
    print(f"  1 thread,  pool 1: {statistics.median(cpu) * 1e6:.1f} us of CPU per call median "
          f"(= {1 / statistics.median(cpu):,.0f} calls per CPU-second)")
    bench_calls("2 threads, pool 1", lambda: throughput(2, 1))
    bench_calls("2 threads, pool 2", lambda: throughput(2, 2))
    engines.shutdown_tickers()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
