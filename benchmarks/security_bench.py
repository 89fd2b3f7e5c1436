"""Cost of authentication + rate limiting on the engine's message path (issue 12 target: <= 20 us per message).

Side by side in one run, repetitions interleaved (off, on, off, on, ...), medians printed:

- **auth+rate** (and each alone): the two middlewares, ``Guard(RateLimit(endpoint))`` with a token and
  a rate limit, against the bare ``endpoint`` (an ASGI app that answers 200 at once): what they add,
  and nothing else to blur it; **req limits**: the request-limits middleware alone, for reference (it
  runs in both configurations, so it is not part of the target);
- **whole app**: the whole engine app (``create_app``), ``POST /api/v1/agents/echo/messages`` to a config
  agent, driven as raw ASGI calls in-process, with both on (a tokens file, rate limits that never
  refuse) against both off (no token, rate limits 0): the difference is what a message pays;
- **http** (``--http``): the same two engines as ``caxton server start`` processes, one keep-alive
  httpx client per engine alternating sequential messages: latency medians over loopback, noisier.

    .venv/bin/python benchmarks/security_bench.py [--runs 21] [--calls 5000] [--app-calls 1000] [--http]

In-process figures are CPU time per call (``time.process_time``): this machine is shared, and wall
time would mostly measure the other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import anyio
import yaml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caxton.engine import auth
from caxton.engine.http.app import create_app
from caxton.engine.core import Engine
from caxton.engine.guard import Guard
from caxton.engine.limits import RequestLimits
from caxton.engine.ratelimit import Limiter, RateLimit
from caxton.engine.state.records import Source
from caxton.spec.project import ProjectConfig, RateLimits

PATH = "/api/v1/agents/echo/messages"
BODY = json.dumps({"content": "hello there", "conversation_id": None}).encode()
SPEC = {"name": "echo", "version": "1.0.0", "system_prompt": "You are echo.",
        "user_prompt_template": "Request: {{ request }}"}
NEVER = {"messages_per_second": 1e9, "messages_burst": 1_000_000_000,
         "mutations_per_second": 1e9, "mutations_burst": 1_000_000_000}
OFF = {"messages_per_second": 0, "mutations_per_second": 0}


def scope_for(token: str) -> Scope:
    headers = [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
               (b"content-length", str(len(BODY)).encode()), (b"authorization", f"Bearer {token}".encode()),
               (b"user-agent", b"security-bench")]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080)}


def driver(app: ASGIApp, token: str) -> Callable[[], Awaitable[int]]:
    """One raw ASGI call of the message route; returns the status."""
    template = scope_for(token)

    async def call() -> int:
        sent = False
        status = 0

        async def receive() -> Message:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app({**template, "state": {}}, receive, send)
        return status

    return call


async def per_call_us(call: Callable[[], Awaitable[int]], calls: int) -> float:
    """CPU time per call (all threads of the process): on a shared machine, wall time mostly measures the others."""
    began = time.process_time()
    for _ in range(calls):
        status = await call()
        if status != 200:
            raise SystemExit(f"benchmark call answered {status}")
    return (time.process_time() - began) / calls * 1e6


async def side_by_side(off: Callable[[], Awaitable[int]], on: Callable[[], Awaitable[int]], runs: int,
                       calls: int) -> dict[str, Any]:
    for call in (off, on):
        await per_call_us(call, max(200, calls // 10))  # warm up (the token's scrypt check happens once here)
    offs, ons = [], []
    for _ in range(runs):
        offs.append(await per_call_us(off, calls))
        ons.append(await per_call_us(on, calls))
    deltas = [b - a for a, b in zip(offs, ons, strict=True)]
    return {"off_us": statistics.median(offs), "on_us": statistics.median(ons),
            "added_us": statistics.median(deltas), "added_min_us": min(ons) - min(offs)}


def tokens_file(directory: Path) -> tuple[Path, str]:
    token, token_id = auth.new_token()
    entry = auth.file_entry("bench", token_id, auth.hash_token(token), ["message", "deploy"], None, None)
    path = directory / "tokens.yaml"
    path.write_text(yaml.safe_dump({"tokens": [entry]}), encoding="utf-8")
    return path, token


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


def engine(directory: Path, security: dict[str, Any]) -> Engine:
    config = ProjectConfig.model_validate({"security": security, "memory": {"enabled": False},
                                           "logging": {"level": "warning"}})
    built = Engine(config, directory)
    built.start()
    built.deploy(SPEC, None, Source())
    return built


async def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    path, token = tokens_file(root)
    on_engine = engine(root / "on", {"tokens_file": str(path), "rate_limits": NEVER})
    off_engine = engine(root / "off", {"rate_limits": OFF})
    try:
        on_app, off_app = create_app(on_engine), create_app(off_engine)
        gate = on_app.state.gate
        limiter = Limiter(RateLimits.model_validate(NEVER))
        bare = driver(endpoint, token)
        layers = {"auth+rate": Guard(RateLimit(endpoint, limiter), gate=gate), "auth only": Guard(endpoint, gate=gate),
                  "rate only": RateLimit(endpoint, limiter),
                  # not part of the target (on in both app configurations): the body/JSON-depth/header checks
                  "req limits": RequestLimits(endpoint, limit=1024 * 1024)}
        results = {name: await side_by_side(bare, driver(app, token), args.runs, args.calls)
                   for name, app in layers.items()}
        results["whole app"] = await side_by_side(driver(off_app, token), driver(on_app, token), args.runs,
                                                  args.app_calls)
    finally:
        on_engine.stop()
        off_engine.stop()
    return results


def http(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Both engines as real processes; one client each, messages alternated; per-message latency medians."""
    import httpx

    from tests.support.engine import EngineProcess

    path, token = tokens_file(root)
    engines = {}
    for name, security in (("off", {"rate_limits": OFF}), ("on", {"tokens_file": str(path), "rate_limits": NEVER})):
        config = root / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"security": security, "memory": {"enabled": False}}), encoding="utf-8")
        engines[name] = EngineProcess(root / f"http-{name}", config=config).start()
    try:
        clients = {name: httpx.Client(base_url=e.url, headers={"Authorization": f"Bearer {token}",
                                                                 "Content-Type": "application/json"})
                   for name, e in engines.items()}
        for client in clients.values():
            deployed = client.put("/api/v1/agents/echo", json={"spec": SPEC, "source": {}})
            assert deployed.status_code == 200, deployed.text
        samples: dict[str, list[float]] = {"off": [], "on": []}
        for n in range(args.http_calls + 200):
            for name in ("off", "on") if n % 2 == 0 else ("on", "off"):
                began = time.perf_counter()
                response = clients[name].post(PATH, content=BODY)
                elapsed = (time.perf_counter() - began) * 1e6
                assert response.status_code == 200, response.text
                if n >= 200:
                    samples[name].append(elapsed)
        for client in clients.values():
            client.close()
    finally:
        for e in engines.values():
            e.terminate()
    off, on = statistics.median(samples["off"]), statistics.median(samples["on"])
    return {"off_us": off, "on_us": on, "added_us": on - off}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--calls", type=int, default=5_000, help="calls per run, middleware only")
    parser.add_argument("--app-calls", type=int, default=1_000, help="calls per run, whole app")
    parser.add_argument("--http", action="store_true", help="also over HTTP (two engine processes)")
    parser.add_argument("--http-calls", type=int, default=3_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = anyio.run(measure, args, Path(tmp))
        if args.http:
            results["http"] = http(args, Path(tmp))
    print(f"authentication + rate limiting on POST {PATH}")
    print(f"in-process: CPU us per call, medians of {args.runs} runs interleaved off/on "
          "(added: median of the per-run differences; best: min(on) - min(off))")
    for name, result in results.items():
        extra = f"   best {result['added_min_us']:6.1f}" if "added_min_us" in result else "   (wall, loopback)"
        print(f"  {name:<10} off {result['off_us']:8.1f} us   on {result['on_us']:8.1f} us   "
              f"added {result['added_us']:6.1f} us per message{extra}")
    print("target: added <= 20 us per message")


if __name__ == "__main__":
    main()
