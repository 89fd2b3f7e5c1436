"""Reconcile benchmark: from `git commit` to the new revision answering, and the idle loop's CPU.

    .venv/bin/python benchmarks/reconcile_bench.py [--commits 15] [--idle 60]
    .venv/bin/python benchmarks/reconcile_bench.py --paused --runs 3 --commits 10 --idle 0

Sets up a real engine (`caxton server start` subprocess on 127.0.0.1, fresh
data dir), a git repository holding the quickstart agents, and
`caxton reconcile --watch` (a subprocess, DEFAULT settings: 30 s interval,
500 ms branch poll) tracking its `main` branch. Then, --commits times: bump
the summarizer's version, commit (GitPython), and send it a message every
10 ms until the reply comes from the new revision; the time from just
before the commit to that reply is one sample (a random 0.2-1.0 s pause
between commits spreads them over the poll period). Idle: the loop's CPU
time (user+sys from /proc) over --idle seconds with nothing to do (covers
the interval's re-plan), as a percentage of one core; the engine's is
printed too. Prints medians and percentiles; figures go to
docs/performance.md ("Reconcile").

--paused (issue 11): before the commits, a canary of data-processor (no
traffic, 1 s analysis interval) is committed and left paused for lack of
data; the summarizer commits are then measured while it stays paused (the
script checks it still is at the end). --runs repeats everything on a fresh
engine, repository and loop and prints each run's p50 and their median.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import git  # noqa: E402
import httpx  # noqa: E402

from tests.support.engine import EngineProcess  # noqa: E402

QUICKSTART = REPO / "examples" / "quickstart"
AGENT = "agents/summarizer.toml"
CANARY = "agents/data-processor.md"


def make_repo(root: Path) -> git.Repo:
    shutil.copytree(QUICKSTART / "agents", root / "agents")
    shutil.copytree(QUICKSTART / "wasm", root / "wasm")
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Bench")
        config.set_value("user", "email", "bench@example.com")
    repo.git.add(A=True)
    repo.index.commit("initial")
    return repo


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answering_revision(client: httpx.Client) -> int:
    reply = client.post("/api/v1/agents/summarizer/messages", json={"content": "ping"})
    return int(reply.json()["revision"]) if reply.status_code == 200 else -1


def wait_revision(client: httpx.Client, wanted: int, timeout: float = 60.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if answering_revision(client) == wanted:
            return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"revision {wanted} not answering after {timeout}s")


def commit_to_answer(repo: git.Repo, root: Path, client: httpx.Client, n: int) -> list[float]:
    samples = []
    revision = answering_revision(client)
    for i in range(n):
        time.sleep(random.uniform(0.2, 1.0))
        path = root / AGENT
        text = path.read_text()
        version = f'version = "0.3.{100 + i}"'
        path.write_text(re.sub(r'^version = ".*"$', version, text, count=1, flags=re.M))
        repo.git.add(AGENT)
        began = time.perf_counter()
        repo.index.commit(f"bench {i}")
        revision += 1
        samples.append(wait_revision(client, revision) - began)
        print(f"  commit {i + 1:>2}: {samples[-1] * 1000:7.0f} ms", flush=True)
    return samples


def idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(pid) - before[name]) / seconds * 100 for name, pid in pids.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def data_processor_rollout(client: httpx.Client) -> dict[str, object] | None:
    agents = client.get("/api/v1/state").json()["agents"]
    found: dict[str, object] | None = next(a for a in agents if a["id"] == "data-processor").get("rollout")
    return found


def pause_a_canary(repo: git.Repo, root: Path, client: httpx.Client, timeout: float = 60.0) -> None:
    """Commit a data-processor canary that gets no traffic, and wait until it pauses for lack of data."""
    path = root / CANARY
    path.write_text(path.read_text().replace('version: "1.0.0"', 'version: "1.1.0"').replace("interval: 30s",
                                                                                          "interval: 1s"))
    repo.git.add(CANARY)
    repo.index.commit("data-processor canary, no traffic")
    deadline = time.monotonic() + timeout
    while (rollout := data_processor_rollout(client)) is None or rollout["status"] != "paused":
        if time.monotonic() > deadline:
            raise SystemExit(f"the canary did not pause in {timeout:.0f}s (rollout: {rollout})")
        time.sleep(0.1)
    print(f"  data-processor: rollout to 1.1.0 paused at step {rollout['step']}/{rollout['steps']}", flush=True)


def one_run(args: argparse.Namespace) -> tuple[list[float], dict[str, float] | None, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        repo = make_repo(root)
        engine = EngineProcess(Path(tmp) / "data").start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")} | {"PYTHONPATH": str(REPO)}
        loop = subprocess.Popen([sys.executable, "-m", "caxton", "reconcile", "--watch", "--source", str(root),
                                 "--engine", engine.url], env=env, cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=(Path(tmp) / "loop.log").open("wb"))
        cpu = None
        try:
            with httpx.Client(base_url=engine.url, timeout=10.0) as client:
                wait_revision(client, 1)
                if args.paused:
                    pause_a_canary(repo, root, client)
                print(f"commit -> new revision answering ({args.commits} commits, default settings"
                      f"{', data-processor paused' if args.paused else ''}):", flush=True)
                samples = commit_to_answer(repo, root, client, args.commits)
                if args.paused:
                    rollout = data_processor_rollout(client)
                    assert rollout is not None and rollout["status"] == "paused", f"not paused any more: {rollout}"
            if args.idle > 0:
                time.sleep(2.0)
                assert engine.proc is not None
                cpu = idle_cpu({"loop": loop.pid, "engine": engine.proc.pid}, args.idle)
        finally:
            loop.send_signal(signal.SIGTERM)
            code = loop.wait(30)
            engine.terminate()
    return samples, cpu, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=15)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measurement (0: none)")
    parser.add_argument("--paused", action="store_true", help="measure while data-processor's canary is paused")
    parser.add_argument("--runs", type=int, default=1, help="repeat on a fresh engine, repository and loop")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), load average {os.getloadavg()[0]:.1f}")
    medians = []
    for run in range(args.runs):
        if args.runs > 1:
            print(f"run {run + 1}/{args.runs}", flush=True)
        samples, cpu, code = one_run(args)
        medians.append(statistics.median(samples))
        print(f"commit -> answering: p50 {statistics.median(samples) * 1000:.0f} ms, "
              f"p90 {percentile(samples, 0.9) * 1000:.0f} ms, min {min(samples) * 1000:.0f} ms, "
              f"max {max(samples) * 1000:.0f} ms")
        if cpu is not None:
            print(f"idle over {args.idle:.0f} s: loop {cpu['loop']:.2f} % of a core, "
                  f"engine {cpu['engine']:.2f} % of a core")
        print(f"loop exit code after SIGTERM: {code}")
    if args.runs > 1:
        print(f"median of the {args.runs} runs' p50: {statistics.median(medians) * 1000:.0f} ms "
              f"(runs: {', '.join(f'{m * 1000:.0f}' for m in medians)} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
