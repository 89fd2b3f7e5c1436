"""/metrics figures: scrape time of a real engine holding 1,000 WASM agents, and the cost of
the HTTP-metrics middleware per request.

Run: .venv/bin/python benchmarks/metrics_bench.py [--agents 1000] [--scrapes 50]
Prints medians; nothing here is asserted (target: scrape <= 50 ms at 1,000 agents).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from caxton.client import agents as agent_api
from caxton.engine.http_metrics import HttpMetrics
from tests.engine.helpers import wasm_spec, wat_module
from tests.support.engine import running_engine


def scrape_times(url: str, scrapes: int) -> tuple[list[float], int, int]:
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(3):
            http.get("/metrics")  # warm up
        times = []
        for _ in range(scrapes):
            began = time.perf_counter()
            response = http.get("/metrics")
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200
        text = response.text
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return times, series, len(text.encode())


def _config(tmp: str) -> Path:
    """A caxton.yaml whose WASM memory budget holds 1,000 agents x 16 MiB (past the default's half of RAM)."""
    path = Path(tmp) / "caxton.yaml"
    path.write_text("server:\n  max_wasm_memory: 32GiB\n")
    return path


def engine_figures(agents: int, scrapes: int) -> None:
    module = wat_module()
    with tempfile.TemporaryDirectory() as tmp, running_engine(Path(tmp) / "data", config=_config(tmp)) as engine:
        client = engine.client(timeout=60)
        began = time.perf_counter()
        for i in range(agents):
            agent_api.deploy(client, wasm_spec(f"agent-{i:04d}"), module)
            agent_api.send(client, f"agent-{i:04d}", {"n": i})  # every revision has observed latencies
        print(f"  deployed and messaged {agents} agents in {time.perf_counter() - began:.1f} s")
        times, series, size = scrape_times(engine.url, scrapes)
    times.sort()
    print(f"  GET /metrics at {agents} agents: p50 {statistics.median(times):.1f} ms, "
          f"p95 {times[int(len(times) * 0.95) - 1]:.1f} ms, max {times[-1]:.1f} ms "
          f"({series} samples, {size / 1e6:.2f} MB)")


def middleware_cost(requests: int) -> None:
    """Nanoseconds the middleware adds around a trivial ASGI app (route already matched)."""

    class Route:
        path = "/api/v1/agents/{name}/messages"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = Route
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(_: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def run(target: Any) -> float:
        began = time.perf_counter()
        for _ in range(requests):
            await target({"type": "http", "method": "POST", "path": "/x"}, receive, send)
        return (time.perf_counter() - began) / requests * 1e9

    wrapped = HttpMetrics(app)
    bare = [asyncio.run(run(app)) for _ in range(5)]
    counted = [asyncio.run(run(wrapped)) for _ in range(5)]
    print(f"  HTTP-metrics middleware: +{statistics.median(counted) - statistics.median(bare):.0f} ns a request "
          f"(bare {statistics.median(bare):.0f} ns, with it {statistics.median(counted):.0f} ns)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    print("metrics benchmark")
    middleware_cost(100_000)
    engine_figures(args.agents, args.scrapes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
