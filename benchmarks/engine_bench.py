"""Engine API benchmark: a real `caxton server start` process on 127.0.0.1, a WASM agent (scorer).

Measures, as medians over --runs runs:
- message to the WASM agent through the HTTP API: sequential latency p50/p99 (one keep-alive client);
- throughput of the same endpoint with a local load generator: `wrk` when installed
  (apt-get install wrk; pass --install-wrk to have this script do it), else httpx clients in threads;
- GET /api/v1/health latency p50;
- the idle server's RSS (after startup and one deploy).

    .venv/bin/python benchmarks/engine_bench.py [--runs 3] [--seconds 5] [--install-wrk]

Targets (issue 3): message p50 <= 2 ms, >= 1,500 req/s, /health p50 <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx

from caxton.client import agents  # noqa: E402
from tests.support.engine import EngineProcess

SCORER = (REPO / "examples" / "quickstart" / "wasm" / "scorer.wasm").read_bytes()
SPEC = {"name": "scorer", "version": "1.0.0", "kind": "wasm", "module": "scorer.wasm"}
MESSAGE = {"content": {"text": "score me, please"}, "conversation_id": None}
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, transport=httpx.HTTPTransport(socket_options=NODELAY), timeout=10.0)


def latency(url: str, method: str, path: str, n: int, body: Any = None) -> dict[str, float]:
    with _client(url) as client:
        for _ in range(100):  # warm up
            client.request(method, path, json=body)
        samples = []
        for _ in range(n):
            began = time.perf_counter()
            response = client.request(method, path, json=body)
            samples.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.text
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1]}


def throughput_wrk(url: str, seconds: int, connections: int) -> float:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(MESSAGE))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script),
         f"{url}/api/v1/agents/scorer/messages"],
        capture_output=True, text=True, check=True,
    ).stdout
    errors = int(re.search(r"non2xx (\d+)", out).group(1))  # type: ignore[union-attr]
    assert errors == 0, out
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def throughput_threads(url: str, seconds: int, threads: int) -> float:
    done = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work() -> None:
        nonlocal done
        count = 0
        with _client(url) as client:
            while time.perf_counter() < deadline:
                assert client.post("/api/v1/agents/scorer/messages", json=MESSAGE).status_code == 200
                count += 1
        with lock:
            done += count

    began = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done / (time.perf_counter() - began)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        # Raw throughput from one client address: the per-caller rate limits (issue 12) off.
        config = Path(tmp) / "caxton.yaml"
        config.write_text("security:\n  rate_limits: {messages_per_second: 0, mutations_per_second: 0}\n")
        engine = EngineProcess(Path(tmp) / "data", config=config).start()
        try:
            with engine.client() as client:
                agents.deploy(client, SPEC, SCORER)
            assert engine.proc is not None
            time.sleep(1.0)
            idle = rss_mb(engine.proc.pid)
            message = latency(engine.url, "POST", "/api/v1/agents/scorer/messages", args.requests, MESSAGE)
            health = latency(engine.url, "GET", "/api/v1/health", args.requests)
            if shutil.which("wrk"):
                rate, generator = throughput_wrk(engine.url, args.seconds, args.connections), 1.0
            else:
                rate, generator = throughput_threads(engine.url, args.seconds, args.connections), 0.0
        finally:
            engine.terminate()
    return {"message_p50_ms": message["p50_ms"], "message_p99_ms": message["p99_ms"],
            "throughput_rps": rate, "health_p50_ms": health["p50_ms"], "idle_rss_mb": idle, "wrk": generator}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per latency sample")
    parser.add_argument("--seconds", type=int, default=5, help="duration of each throughput run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--install-wrk", action="store_true", help="apt-get install wrk first if missing")
    args = parser.parse_args()
    if args.install_wrk and not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    runs = [one_run(args) for _ in range(args.runs)]
    generator = f"wrk (1 thread, {args.connections} connections)" if runs[0]["wrk"] else (
        f"httpx, {args.connections} threads with keep-alive")
    print(f"engine API benchmark: {args.runs} runs, medians; load generator: {generator}")
    for key, label, unit in (
        ("message_p50_ms", "message to WASM agent, p50", "ms"),
        ("message_p99_ms", "message to WASM agent, p99", "ms"),
        ("throughput_rps", "message throughput", "req/s"),
        ("health_p50_ms", "GET /health, p50", "ms"),
        ("idle_rss_mb", "idle server RSS", "MB"),
    ):
        values = [run[key] for run in runs]
        print(f"  {label:<30} {statistics.median(values):9.2f} {unit:<6} (runs: {', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
