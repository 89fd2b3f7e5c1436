"""Benchmark of ``caxton plan`` (whole process) and of a config agent's hot reload.

Starts a real engine subprocess on a free port, generates N config agents,
applies them, then times:
- ``caxton plan DIR`` for 1,000 agents against the engine holding them (target median <= 1.0 s),
- a no-op plan for 100 agents (target <= 0.5 s),
  each both warm (the validation cache holds the unchanged files, as on a developer's machine or
  a CI runner that keeps ``$CAXTON_CACHE_DIR``) and cold (``CAXTON_NO_CACHE=1``: every file parsed),
- hot reload of one config agent: from plan submission (POST /api/v1/applies) to the new
  revision answering a message (target <= 100 ms).

    .venv/bin/python benchmarks/plan_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Like an ordinary install, let Python cache bytecode (some shells set PYTHONDONTWRITEBYTECODE,
#: which recompiles every caxton module on each run: ~0.1 s).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from caxton.client import agents, applies, lock, plan_apply  # noqa: E402
from tests.support.engine import EngineProcess  # noqa: E402

AGENT = """---
name: agent-{i}
version: "1.0.{v}"
capabilities: [data-processing]
tools: [csv_parser]
parameters:
  timeout: "30s"
system_prompt: |
  You are agent {i}. Answer briefly.
user_prompt_template: "Request: {{{{ request }}}}"
---
Generated agent {i}.
"""


def write_agents(directory: Path, count: int, version: int = 0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"agent-{i}.md").write_text(AGENT.format(i=i, v=version))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU: list[float] = []


def caxton(*args: str, cold: bool = False) -> float:
    """Wall seconds of one CLI run; its CPU seconds (user+sys, steadier on a noisy VM) go to CPU."""
    env = {**CHILD_ENV, "CAXTON_NO_CACHE": "1"} if cold else CHILD_ENV
    cpu_before, started = _children_cpu(), time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "caxton", *args], capture_output=True, text=True, cwd=ROOT,
                            env=env)
    took = time.perf_counter() - started
    CPU.append(_children_cpu() - cpu_before)
    if result.returncode not in (0, 2):
        raise SystemExit(f"caxton {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return took


def median_of(runs: int, *args: str, cold: bool = False) -> tuple[float, list[float]]:
    times = [caxton(*args, cold=cold) for _ in range(runs)]
    return statistics.median(times), times


def report(label: str, runs: int, *args: str) -> None:
    for cold in (False, True):
        CPU.clear()
        m, times = median_of(runs, *args, cold=cold)
        print(f"{label} ({'cold' if cold else 'warm'}): median {m:.3f} s (cpu {statistics.median(CPU):.3f} s)  "
              f"runs {[round(t, 3) for t in times]}")


def hot_reload(engine: EngineProcess, directory: Path, runs: int) -> list[float]:
    times = []
    with engine.client() as client:
        for n in range(1, runs + 1):
            write_agents(directory, 1, version=n)
            planned = plan_apply.make(client, str(directory))
            lease = lock.acquire(client, "bench", ttl=30)
            body = plan_apply.submission(planned.plan, planned.desired, lease.token)
            started = time.perf_counter()
            record = applies.submit(client, body)
            while True:
                reply = agents.send(client, "agent-0", "ping")
                if f"1.0.{n}" in agents.get(client, "agent-0").version or reply.revision == n + 1:
                    break
            times.append(time.perf_counter() - started)
            applies.get(client, record.id, wait=5)
            lock.release(client, lease.token)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        CHILD_ENV["CAXTON_CACHE_DIR"] = str(base / "cache")
        engine = EngineProcess(base / "data").start()
        try:
            big, small, one = base / "big", base / "small", base / "one"
            write_agents(big, 1000)
            started = time.perf_counter()
            caxton("apply", str(big), "--auto-approve", "--engine", engine.url)
            print(f"setup: applied 1,000 agents in {time.perf_counter() - started:.1f} s")
            report("plan, 1,000 agents, engine holding them", args.runs, "plan", str(big), "--engine", engine.url)
        finally:
            engine.terminate()
        engine = EngineProcess(base / "data-small").start()
        try:
            write_agents(small, 100)
            caxton("apply", str(small), "--auto-approve", "--engine", engine.url)
            report("plan, 100 agents, no changes", args.runs, "plan", str(small), "--engine", engine.url,
                   "--detailed-exitcode")
        finally:
            engine.terminate()
        engine = EngineProcess(base / "data2").start()
        try:
            write_agents(one, 1)
            caxton("apply", str(one), "--auto-approve", "--engine", engine.url)
            times = hot_reload(engine, one, max(args.runs, 5))
            print(f"hot reload (submission -> new revision answering): median {statistics.median(times) * 1000:.1f} ms"
                  f"  runs {[round(t * 1000, 1) for t in times]}")
        finally:
            engine.terminate()


if __name__ == "__main__":
    main()
