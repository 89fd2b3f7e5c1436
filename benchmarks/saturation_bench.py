"""Saturation benchmark (issue 18): a slow WASM agent at 10x its capacity, a healthy agent measured beside it.

A real `caxton server start` on 127.0.0.1 with two agents: `slow` (a busy loop of
--spin iterations per message, tens of ms) and `healthy` (the quickstart scorer).
Phases (the load generator and each measuring client in a process of its own):
1. idle: sequential messages to `healthy` and, at the same time, control-plane calls (p50/p99);
2. the slow agent's service time (median of sequential messages), hence its capacity;
3. load: for --seconds, messages to `slow` offered open-loop at --factor x its capacity
   (each its own request, never waiting for the previous), while one client measures
   `healthy` messages and another the control plane (`GET /api/v1/agents`, `/api/v1/state`,
   `/api/v1/ready`) sequentially, and a third sends to `slow` sequentially (how fast a refusal
   comes when the generator's own queueing is not in the way).

Prints the healthy agent's idle and loaded p99 (target: loaded <= 2x idle), the control
plane's p99 (target <= 50 ms), the refusals' p99 (429/503 with Retry-After; target <= 10 ms)
and the slow agent's status counts.

    .venv/bin/python benchmarks/saturation_bench.py [--seconds 10] [--factor 10] [--engine-tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx

from tests.engine.helpers import SCORER_WASM, wat_module
from tests.support.engine import EngineProcess

#: How long a measuring client waits for one answer.
TIMEOUT_S = 20.0
CONTROL = ("/api/v1/agents", "/api/v1/state", "/api/v1/ready")


def spin(iterations: int) -> bytes:
    return wat_module(f"(local $i i32) (local.set $i (i32.const {iterations}))"
                      " (block $done (loop $l (br_if $done (i32.eqz (local.get $i)))"
                      " (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br $l)))")


def p(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def line(name: str, samples: list[float]) -> str:
    return f"  {name:<28} n={len(samples):>5}  p50 {p(samples, 0.5):7.2f} ms  p99 {p(samples, 0.99):7.2f} ms"


def timed(client: httpx.Client, method: str, path: str, body: object = None) -> tuple[float, httpx.Response]:
    began = time.perf_counter()
    response = client.request(method, path, json=body)
    return (time.perf_counter() - began) * 1000, response


def deploy(client: httpx.Client, name: str, module: bytes) -> None:
    spec = {"name": name, "version": "1.0.0", "kind": "wasm", "module": f"{name}.wasm",
            "resource_limits": {"fuel": 10**12, "max_execution_time_ms": 10_000}}
    body = {"spec": spec, "module": base64.b64encode(module).decode(), "source": {}}
    response = client.put(f"/api/v1/agents/{name}", json=body)
    assert response.status_code == 200, response.text


def sequential(url: str, paths: list[tuple[str, str, object]], until: float,
               refused: dict[int, list[float]] | None = None) -> list[float]:
    """One keep-alive client calling ``paths`` in turn until ``until``; the latencies (ms).

    With ``refused``: the latencies of answers with its statuses go there instead.
    """
    refused = {} if refused is None else refused
    samples: list[float] = []
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
        i = 0
        while time.perf_counter() < until:
            method, path, body = paths[i % len(paths)]
            began = time.perf_counter()
            try:
                ms, response = timed(client, method, path, body)
            except httpx.TimeoutException:  # the engine before the bulkheads: an unbounded backlog
                samples.append((time.perf_counter() - began) * 1000)
                print(f"  {method} {path}: no answer in {TIMEOUT_S:g} s", file=sys.stderr)
                i += 1
                continue
            if response.status_code in refused:
                refused[response.status_code].append(ms)
                continue
            assert response.status_code in (200, 503), response.text  # /ready may say 503 (overloaded)
            samples.append(ms)
            i += 1
    return samples


def _measure(url: str, paths: list[tuple[str, str, object]], seconds: float, statuses: tuple[int, ...],
             out: Any) -> None:
    """``sequential`` in a process of its own: its answers go to ``out``."""
    refused: dict[int, list[float]] = {status: [] for status in statuses}
    out.put((sequential(url, paths, time.perf_counter() + seconds, refused), refused))


def measured(clients: dict[str, tuple[list[tuple[str, str, object]], tuple[int, ...]]], url: str,
             seconds: float) -> dict[str, tuple[list[float], dict[int, list[float]]]]:
    """Each sequential client in a process of its own, all at once, for ``seconds``: name -> (latencies, refused).

    Processes, not threads: threads of one process would wait for each other's GIL (up to the 5 ms switch
    interval) and count it as the engine's latency, only in the phases where several clients run.
    """
    queues: dict[str, Any] = {name: multiprocessing.Queue() for name in clients}
    procs = [multiprocessing.Process(target=_measure, args=(url, paths, seconds, statuses, queues[name]))
             for name, (paths, statuses) in clients.items()]
    for proc in procs:
        proc.start()
    found = {name: queue.get() for name, queue in queues.items()}
    for proc in procs:
        proc.join()
    return found


def offer(url: str, rate: float, seconds: float, out: Any) -> None:
    """In its own process (the measurers must not share its CPU): messages to `slow` at ``rate``/s, open loop.

    Raw HTTP/1.1 on asyncio streams, one connection per message: httpx's AsyncClient needed ~1-2 ms of
    CPU per request, so on this machine it sent only ~30 of the 250 messages a second it was asked to
    (the engine saw ~1.3x the slow agent's capacity, not 10x). Every due message is sent at once, late
    or not, and the rate actually offered is reported.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    path = "/api/v1/agents/slow/messages"

    async def one(i: int) -> tuple[float, int, bool]:
        began = time.perf_counter()
        body = json.dumps({"content": i}).encode()
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            text = await reader.readexactly(int(length.group(1))) if length else b""
        finally:
            writer.close()
        if status not in (200, 429, 503):
            print(f"  slow: unexpected {status}: {text[:300]!r}", file=sys.stderr)
        return (time.perf_counter() - began) * 1000, status, b"\r\nretry-after:" in head.lower()

    async def run() -> tuple[list[tuple[float, int, bool]], float]:
        tasks, i, began = [], 0, time.perf_counter()
        while time.perf_counter() < began + seconds:
            due = int((time.perf_counter() - began) * rate) + 1
            while i < due:
                tasks.append(asyncio.ensure_future(asyncio.wait_for(one(i), 60.0)))
                i += 1
            await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
        sent_in = time.perf_counter() - began
        return list(await asyncio.gather(*tasks)), len(tasks) / sent_in

    out.put(asyncio.run(run()))


def run(url: str, seconds: float, factor: float, iterations: int) -> None:
    with httpx.Client(base_url=url, timeout=60.0) as client:
        deploy(client, "slow", spin(iterations))
        deploy(client, "healthy", SCORER_WASM)
        service = [client.post("/api/v1/agents/slow/messages", json={"content": 0}).json()["duration_ms"]
                   for _ in range(10)]
    message: tuple[str, str, object] = ("POST", "/api/v1/agents/healthy/messages", {"content": {"text": "score me"}})
    controls: list[tuple[str, str, object]] = [("GET", path, None) for path in CONTROL]
    sequential(url, [message, *controls], time.perf_counter() + 1.0)  # warm up
    # Idle: the same two measuring clients as under load, at once, so the only difference is the load.
    idle = measured({"healthy": ([message], ()), "control": (controls, ())}, url, 4.0)
    idle_healthy, idle_control = idle["healthy"][0], idle["control"][0]
    service_ms = statistics.median(service)
    capacity = 1000 / service_ms
    rate = capacity * factor
    print(f"slow agent: {service_ms:.1f} ms per message, capacity {capacity:.1f}/s; offering {rate:.0f}/s "
          f"for {seconds:g} s")

    out: Any = multiprocessing.Queue()
    load = multiprocessing.Process(target=offer, args=(url, rate, seconds, out))
    load.start()
    settle = min(2.0, seconds / 4)  # let the backlog build before measuring beside it
    time.sleep(settle)
    slow = ("POST", "/api/v1/agents/slow/messages", {"content": "probe"})
    loaded = measured({"healthy": ([message], ()), "control": (controls, ()), "probe": ([slow], (429, 503))},
                      url, seconds - settle)
    beside = {name: samples for name, (samples, _) in loaded.items()}
    probe = loaded["probe"][1]
    results, offered = out.get()
    load.join()

    statuses = Counter(status for _, status, _ in results)
    refusals = [ms for ms, status, _ in results if status in (429, 503)]
    refusals_429 = [ms for ms, status, _ in results if status == 429]
    served = [ms for ms, status, _ in results if status == 200]
    missing = sum(1 for _, status, retry in results if status in (429, 503) and not retry)
    print("idle")
    print(line("healthy message", idle_healthy))
    print(line("control plane", idle_control))
    print(f"under load (slow agent at {factor:g}x its capacity)")
    print(line("healthy message", beside["healthy"]))
    print(line("control plane", beside["control"]))
    print(line("slow: served (200)", served))
    print(line("slow: refused 429", refusals_429))
    print(line("slow: refused 429 + 503", refusals))
    print(f"  slow statuses: {dict(sorted(statuses.items()))}; refusals without Retry-After: {missing}; "
          f"offered {offered:.0f}/s ({offered / capacity:.1f}x its capacity)")
    print(line("slow, one sequential client: 429", probe[429]))
    print(f"  slow, one sequential client: {len(beside['probe'])} served, {len(probe[503])} 503")
    ratio = p(beside["healthy"], 0.99) / p(idle_healthy, 0.99)
    print("targets")
    print(f"  healthy p99 loaded / idle: {ratio:.2f} (target <= 2)")
    print(f"  control plane p99 under load: {p(beside['control'], 0.99):.2f} ms (target <= 50 ms)")
    print(f"  refusal p99: {p(probe[429], 0.99):.2f} ms as one sequential client sees it, "
          f"{p(refusals, 0.99):.2f} ms in the open-loop generator (target <= 10 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--factor", type=float, default=10.0, help="offered load / the slow agent's capacity")
    parser.add_argument("--spin", type=int, default=40_000_000, help="busy-loop iterations per slow message")
    parser.add_argument("--engine-tree", type=Path, default=None,
                        help="run the engine of this checkout (e.g. a `git archive` of main before the bulkheads)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PYTHONPATH": str(args.engine_tree.resolve())} if args.engine_tree else None
        engine = EngineProcess(Path(tmp) / "data", env=env)
        engine.start()
        try:
            run(engine.url, args.seconds, args.factor, args.spin)
        finally:
            engine.terminate()


if __name__ == "__main__":
    main()
