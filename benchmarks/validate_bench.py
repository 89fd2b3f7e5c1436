"""Benchmark of ``caxton validate`` as a whole process (imports included).

Generates desired-state repositories in a temp directory (10 config agents;
1,000 agent files of which 20 are WASM agents with their own modules) and
times ``caxton validate DIR`` over several runs. Prints medians; targets:
<= 0.3 s for 10 files, <= 1.0 s for 1,000 files. Each repository is timed warm
(the validation cache holds every file: the pre-commit and developer case) and
cold (``--no-cache``: every file parsed and checked, on one worker per core; and
with ``CAXTON_JOBS=1``, on one core).

    .venv/bin/python benchmarks/validate_bench.py [--runs 7] [--caxton CMD] [--small]

``--caxton`` times another install (e.g. ``--caxton .venv-light/bin/caxton``, the
light install without the engine extra; the repositories are still generated
with this interpreter's wasmtime); ``--small`` times only ``--help`` and 10 files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Like an ordinary install, let Python cache bytecode (some shells set PYTHONDONTWRITEBYTECODE,
#: which recompiles every caxton module on each run: ~0.1 s).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

CONFIG_MD = """---
name: agent-{i}
version: "1.{i}.0"
description: Generated agent number {i}.
capabilities:
  - data-processing
tools:
  - csv_parser
  - json_validator
parameters:
  max_file_size: "50MB"
  timeout: "30s"
memory:
  enabled: true
  scope: workspace
system_prompt: |
  You are agent {i}. Analyze the data you are given and report.
user_prompt_template: |
  Agent {i}, process this request: {{{{ request }}}}
  {{% if memory_context %}}Context: {{{{ memory_context }}}}{{% endif %}}
---

# Agent {i}

Generated for the validate benchmark.
"""

CONFIG_TOML = '''name = "agent-{i}"
version = "1.{i}.0"
tools = ["calculator"]
system_prompt = """
You are agent {i}. Summarize.
"""
user_prompt_template = "Agent {i}, summarize: {{{{ request }}}}"

[parameters]
max_bullets = 5
'''

WASM_MD = """---
name: wasm-{i}
version: "1.0.0"
kind: wasm
module: ../wasm/m{i}.wasm
sha256: {sha}
security_policy:
  allowed_imports: [caxton.log]
---
"""

WAT = """(module
  (import "caxton" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const {i}))
  (func (export "caxton_handle") (param i32 i32) (result i64) (i64.const 0)))
"""


def make_repo(root: Path, config: int, wasm: int) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "caxton.yaml").write_text("agents_dir: agents\n", "utf-8")
    for i in range(config):
        if i % 10 == 9:
            (root / "agents" / f"agent-{i}.toml").write_text(CONFIG_TOML.format(i=i), "utf-8")
        else:
            (root / "agents" / f"agent-{i}.md").write_text(CONFIG_MD.format(i=i), "utf-8")
    if wasm:
        import wasmtime

        (root / "wasm").mkdir()
        for i in range(wasm):
            module = bytes(wasmtime.wat2wasm(WAT.format(i=1024 + i)))
            (root / "wasm" / f"m{i}.wasm").write_bytes(module)
            sha = hashlib.sha256(module).hexdigest()
            (root / "agents" / f"wasm-{i}.md").write_text(WASM_MD.format(i=i, sha=sha), "utf-8")
    return root


def command() -> list[str]:
    script = Path(sys.executable).with_name("caxton")
    return [str(script)] if script.exists() else [sys.executable, "-m", "caxton"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_runs(args: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user+sys) seconds of each run; CPU time is steadier on a busy machine."""
    walls, cpus = [], []
    for _ in range(runs):
        cpu_before, start = _children_cpu(), time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu_before)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--caxton", help="command that runs caxton (default: this interpreter's)")
    parser.add_argument("--small", action="store_true", help="only --help and the 10-file repository")
    options = parser.parse_args()
    base = shlex.split(options.caxton) if options.caxton else command()
    work = Path(tempfile.mkdtemp(prefix="caxton-bench-"))
    env = {**CHILD_ENV, "CAXTON_CACHE_DIR": str(work / "cache")}
    one_core = {**env, "CAXTON_JOBS": "1"}
    ten = [*base, "validate", str(make_repo(work / "ten", 10, 0))]
    thousand = [*base, "validate", str(make_repo(work / "k", 980, 20) if not options.small else work)]
    cases = [
        ("caxton --help", [*base, "--help"], env),
        ("validate 10 config files, warm", ten, env),
        ("validate 10 config files, cold", [*ten, "--no-cache"], env),
        ("validate 1,000 files (980 config + 20 WASM), warm", thousand, env),
        ("validate 1,000 files, cold", [*thousand, "--no-cache"], env),
        ("validate 1,000 files, cold, one core", [*thousand, "--no-cache"], one_core),
    ][:3 if options.small else None]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), load average {os.getloadavg()[0]:.1f}, "
          f"{options.runs} runs, command: {' '.join(base)}")
    try:
        for label, args, child_env in cases:
            walls, cpus = time_runs(args, options.runs, child_env)
            print(f"{label:<52} wall median {statistics.median(walls):.3f} s (min {min(walls):.3f}, "
                  f"max {max(walls):.3f}); cpu median {statistics.median(cpus):.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
