"""WASM sandbox figures: deploy of ~1 MB modules and in-process message throughput.

Deploy = load_module (size check, sha256, compile, import/export checks) + start
(instantiate + caxton_init), measured three ways: cold (nothing cached), after an
engine restart (serialized artifact on disk), and a redeploy (compiled module in
process). Two module shapes: a 1 MB data segment, and ~1 MB of code.
Each deploy figure is wall time and process CPU time (the machine is shared).
Throughput = WasmAgentRuntime.handle with the quickstart scorer (JSON encode,
fuel + deadline, alloc, copy in, handle, copy out, JSON decode, metrics).
Steady state per compiler: CPU per call of the scorer and of a compute-heavy
agent (a 200,000-iteration loop per message) under Cranelift and Winch.
``--compilers`` adds the candidate matrix behind the compiler choice (cold
compile of the code-heavy module per compiler setting, with and without
trimming the exports to the ABI ones).

Run: .venv/bin/python benchmarks/sandbox_bench.py [--quick] [--compilers]
Prints medians over several runs; nothing here is asserted.
"""

from __future__ import annotations

import dataclasses
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
from caxton.rules import wasmbin

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
COMPUTE_ITERATIONS = 200_000
COMPUTE_WAT = f"""(module (memory (export "memory") 1)
 (data (i32.const 0) "{{\\"ok\\":true}}")
 (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
 (func (export "caxton_handle") (param i32 i32) (result i64) (local $i i32) (local $acc i32)
  (loop $l
   (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (i32.xor (local.get $i) (i32.const 0x5bd1e995))))
   (i32.store (i32.add (i32.const 4096) (i32.and (local.get $i) (i32.const 1020))) (local.get $acc))
   (local.set $acc (i32.add (local.get $acc)
     (i32.load (i32.add (i32.const 4096) (i32.and (i32.mul (local.get $i) (i32.const 4)) (i32.const 1020))))))
   (local.set $i (i32.add (local.get $i) (i32.const 1)))
   (br_if $l (i32.lt_u (local.get $i) (i32.const {COMPUTE_ITERATIONS}))))
  (i32.store (i32.const 8192) (local.get $acc))
  (i64.const 11)))"""


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


Sample = tuple[float, float]  # (wall seconds, process CPU seconds)


def deploy(wasm: bytes, compilers: set[str] | None = None) -> Sample:
    """Wall and CPU seconds for load_module + start of one runtime (stopped afterwards)."""
    policy, limits = SecurityPolicy(), WasmResourceLimits(max_memory_bytes=64 * 1024 * 1024)
    started, cpu_started = time.perf_counter(), time.process_time()
    module = runtime.load_module(wasm, policy, max_module_size=limits.max_module_size)
    rt = runtime.WasmAgentRuntime(module, limits, policy, agent="bench-deploy", revision=1)
    rt.start()
    elapsed = (time.perf_counter() - started, time.process_time() - cpu_started)
    rt.stop()
    if compilers is not None:
        compilers.add(module.compiler)
    return elapsed


def median_ms(samples: list[Sample]) -> str:
    wall, cpu = [s[0] for s in samples], [s[1] for s in samples]
    return (f"{statistics.median(wall) * 1000:8.1f} ms wall (min {min(wall) * 1000:.1f}, max {max(wall) * 1000:.1f}), "
            f"{statistics.median(cpu) * 1000:.1f} ms CPU")


def bench_deploy(name: str, wasm: bytes, cache_dir: Path) -> None:
    cold: list[Sample] = []
    restart: list[Sample] = []
    redeploy: list[Sample] = []
    used: set[str] = set()
    for _ in range(RUNS):
        for stale in cache_dir.glob("*.cwasm"):
            stale.unlink()
        modules.clear_memory_cache()
        cold.append(deploy(wasm, used))  # compiles, writes the artifact
        modules.clear_memory_cache()
        restart.append(deploy(wasm))  # deserializes the artifact
        redeploy.append(deploy(wasm))  # in-process cache
    code = wasmbin.read_layout(wasm).code_bytes
    print(f"deploy {name} ({len(wasm) / 1e6:.2f} MB, {code / 1e6:.2f} MB of code; compiled by {', '.join(sorted(used))})")
    print(f"  cold (validate + compile + instantiate): {median_ms(cold)}")
    print(f"  after engine restart (disk cache):       {median_ms(restart)}")
    print(f"  redeploy (in-process cache):             {median_ms(redeploy)}")


def custom_engine(compiler: str, opt_level: str | None = None, parallel: bool | None = None) -> engines.SandboxEngine:
    """An engine like the sandbox's, with one compiler setting changed (candidates only)."""
    config = engines.make_config((), compiler=compiler)
    if opt_level is not None:
        config.cranelift_opt_level = opt_level
    if parallel is not None:
        config.parallel_compilation = parallel
    engine = wasmtime.Engine(config)
    return engines.SandboxEngine(key=(), engine=engine, ticker=engines.EpochTicker(engine), compiler=compiler)


def cpu_per_call(engine: engines.SandboxEngine, wasm: bytes, calls: int) -> float:
    """Process CPU seconds per handle() of a module compiled by ``engine`` (after a warm-up)."""
    policy = SecurityPolicy()
    loaded = runtime.load_module(wasm, policy)
    loaded = dataclasses.replace(loaded, module=wasmtime.Module(engine.engine, wasm), engine=engine)
    rt = runtime.WasmAgentRuntime(loaded, WasmResourceLimits(fuel=10**12, max_execution_time_ms=60_000), policy,
                                  agent="bench-steady", revision=1)
    rt.start()
    envelope = {"message": "score me", "conversation_id": "c-1", "from": "bench"}
    for _ in range(max(10, calls // 20)):
        rt.handle(envelope)
    started = time.process_time()
    for _ in range(calls):
        rt.handle(envelope)
    elapsed = time.process_time() - started
    rt.stop()
    return elapsed / calls


def bench_steady_state() -> None:
    compute = bytes(wasmtime.wat2wasm(COMPUTE_WAT))
    print("steady state per compiler (process CPU per handle(), medians)")
    settings = [("cranelift (opt speed, default)", engines.CRANELIFT, None),
                ("cranelift opt none", engines.CRANELIFT, "none"),
                ("winch", engines.WINCH, None)]
    for label, compiler, opt in settings:
        engine = custom_engine(compiler, opt)
        scorer = statistics.median(cpu_per_call(engine, SCORER.read_bytes(), CALLS // 4) for _ in range(RUNS))
        heavy = statistics.median(cpu_per_call(engine, compute, 100 if QUICK else 300) for _ in range(RUNS))
        print(f"  {label:32s} scorer {scorer * 1e6:6.1f} us/call ({1 / scorer:8,.0f} calls per CPU-second); "
              f"compute-heavy ({COMPUTE_ITERATIONS:,} iterations) {heavy * 1e6:8.1f} us/call")
        engine.ticker.shutdown()


def bench_compilers(wasm: bytes) -> None:
    """Cold compile of the code-heavy module per candidate compiler setting (wasmtime.Module only)."""
    layout = wasmbin.read_layout(wasm)
    trimmed = wasmbin.keep_exports(wasm, layout, lambda e: e.kind != "func" or e.name in modules.EXPORT_SIGNATURES)
    candidates = [
        ("cranelift opt speed (default), all exports", engines.CRANELIFT, None, None, wasm),
        ("cranelift opt none, all exports", engines.CRANELIFT, "none", None, wasm),
        ("cranelift speed, serial, all exports", engines.CRANELIFT, None, False, wasm),
        ("winch, all exports", engines.WINCH, None, None, wasm),
        ("winch, serial, all exports", engines.WINCH, None, False, wasm),
        ("cranelift speed, ABI exports only", engines.CRANELIFT, None, None, trimmed),
        ("cranelift opt none, ABI exports only", engines.CRANELIFT, "none", None, trimmed),
        ("winch, ABI exports only (chosen)", engines.WINCH, None, None, trimmed),
        ("winch, serial, ABI exports only", engines.WINCH, None, False, trimmed),
    ]
    print(f"cold compile of the code-heavy module per candidate ({len(layout.exports)} exports)")
    for label, compiler, opt, parallel, data in candidates:
        samples: list[Sample] = []
        for _ in range(RUNS):
            engine = custom_engine(compiler, opt, parallel)
            started, cpu_started = time.perf_counter(), time.process_time()
            wasmtime.Module(engine.engine, data)
            samples.append((time.perf_counter() - started, time.process_time() - cpu_started))
        print(f"  {label:44s} {median_ms(samples)}")


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
    if "--compilers" in sys.argv:
        bench_compilers(code_module())
    bench_steady_state()
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
