"""The engine's message path against its framework's floor, side by side in one run.

Starts, each in its own process on a free 127.0.0.1 port:

- ``floor``: a bare FastAPI app served by uvicorn with the settings the engine uses
  (httptools, no access log, no server header, lifespan on; FastAPI's native
  OpenTelemetry off), answering
  ``POST /api/v1/agents/{name}/messages`` by parsing the same body shape into a
  pydantic model and returning a small JSON reply of the engine's reply shape;
- ``engine``: a real ``caxton server start`` with an API token configured, the
  quickstart scorer (examples/quickstart/agents/scorer.md + wasm/scorer.wasm)
  deployed, and every request sending ``Authorization: Bearer <token>``. The
  per-caller rate limits are raised out of the way (1e6/s): the check still runs,
  it just never refuses (at the default of 1,000/s one caller would be capped);
- ``engine-open`` (with ``--no-token``): the same engine without any token;
- ``baseline`` (with ``--baseline DIR``): the engine of another checkout, with the token.

Then drives them with the same load generator for ``--runs`` rounds, alternating
the targets within each round (order flipped every round), and prints req/s, p50
and p99 per run, the medians and the ratio engine / floor (target >= 0.7, p50 <= 1.5 ms).

Load generator: ``wrk`` when installed (Debian/Ubuntu: ``apt-get install wrk``;
``--install-wrk`` runs that), with ``-t1 -c8`` by default. Without wrk, a Python
asyncio generator (keep-alive connections, raw HTTP/1.1) runs instead. Caveat: on
a 2-core machine that generator needs about a core itself and competes with the
server, so its absolute figures are far lower than wrk's; the ratio is still
measured with the same generator on both sides, but prefer wrk.

    .venv/bin/python benchmarks/http_floor_bench.py [--runs 5] [--seconds 10] [--connections 8] [--no-token]
        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUICKSTART = REPO / "examples" / "quickstart"
PATH = "/api/v1/agents/scorer/messages"
MESSAGE = {"content": {"text": "score me, please"}, "conversation_id": None}
TOKEN = "bench-" + "x" * 40
CONFIG = "security:\n  rate_limits: {messages_per_second: 1000000, messages_burst: 1000000}\n"
TARGET_RATIO, TARGET_P50_MS = 0.7, 1.5
#: The engine's FastAPI setting (``caxton.engine.http.app.FASTAPI_TELEMETRY``), written out: the floor imports no caxton.
FASTAPI_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False}


# --- the floor app ---------------------------------------------------------------------------------
class FloorBody(BaseModel):
    content: Any
    conversation_id: str | None = None


def floor_app() -> FastAPI:
    """The bare app: the same body shape parsed by pydantic, a small JSON reply of the engine's shape.

    FastAPI's native OpenTelemetry is off, as in the engine (``caxton.engine.http.app.FASTAPI_TELEMETRY``).
    """
    app = FastAPI(telemetry=FASTAPI_TELEMETRY)

    @app.post("/api/v1/agents/{name}/messages")
    async def send(name: str, body: FloorBody) -> dict[str, Any]:
        return {"agent": name, "revision": 1, "conversation_id": body.conversation_id,
                "reply": {"agent": name, "score": 42}, "duration_ms": 0.01}

    @app.get("/api/v1/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def serve_floor(port: int) -> None:
    """Serve the floor app (in a child process: ``--serve-floor PORT``) with the engine's uvicorn settings."""
    import uvicorn

    uvicorn.run(floor_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on",
                server_header=False, http="httptools" if _has_httptools() else "h11")


def _has_httptools() -> bool:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return False
    return True


# --- targets ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    name: str
    url: str
    token: str | None
    proc: subprocess.Popen[bytes]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/api/v1/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url}: not ready after {timeout} s")


def start_floor() -> Target:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(port)], env=_env())
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return Target("floor", url, None, proc)


def start_engine(tmp: Path, name: str, token: str | None, repo: Path = REPO) -> Target:
    import httpx

    port = free_port()
    config = tmp / f"{name}.yaml"
    config.write_text(CONFIG)
    env = _env(repo)
    if token is not None:
        env["CAXTON_API_TOKEN"] = token
    proc = subprocess.Popen(
        [sys.executable, "-m", "caxton", "server", "start", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(tmp / f"{name}-data"), "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp / f"{name}.log").open("wb"), cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    spec, module = quickstart_scorer()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"spec": spec, "module": _b64(module), "source": {"actor": "bench"}}
    answer = httpx.put(f"{url}/api/v1/agents/scorer", json=body, headers=headers, timeout=30.0)
    answer.raise_for_status()
    check = httpx.post(url + PATH, json=MESSAGE, headers=headers, timeout=5.0)
    check.raise_for_status()
    return Target(name, url, token, proc)


def quickstart_scorer() -> tuple[dict[str, Any], bytes]:
    """The scorer's spec (front matter of agents/scorer.md) and module bytes."""
    import yaml

    text = (QUICKSTART / "agents" / "scorer.md").read_text()
    spec = yaml.safe_load(text.split("---", 2)[1])
    module = (QUICKSTART / "agents" / spec["module"]).resolve().read_bytes()
    return spec, module


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _env(repo: Path = REPO) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env["PYTHONPATH"] = str(repo)
    return env


def stop(target: Target) -> None:
    if target.proc.poll() is None:
        target.proc.terminate()
    try:
        target.proc.wait(30)
    except subprocess.TimeoutExpired:
        target.proc.kill()
        target.proc.wait(10)


# --- load generators ------------------------------------------------------------------------------
@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    #: The server process's CPU time per request (user + system; Linux only, else nan): steadier than
    #: req/s on a machine shared with other work, and the floor / engine ratio of it is the cost ratio.
    cpu_us: float = float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), nan elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(target: Target, seconds: int, connections: int, scratch: Path) -> Sample:
    script = scratch / f"{target.name}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {target.token}"\n' if target.token else ""
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(MESSAGE))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + auth +
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d errors %d\\n", summary.errors.status,'
        " summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n"
        '  io.write(string.format("p50us %d p99us %d\\n", latency:percentile(50), latency:percentile(99)))\n'
        "end\n"
    )
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script), target.url + PATH],
        capture_output=True, text=True, check=True,
    ).stdout
    bad = re.search(r"non2xx (\d+) errors (\d+)", out)
    assert bad is not None and bad.group(1) == "0" and bad.group(2) == "0", out
    lat = re.search(r"p50us (\d+) p99us (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert lat is not None and rps is not None, out
    return Sample(float(rps.group(1)), int(lat.group(1)) / 1000, int(lat.group(2)) / 1000)


def run_python(target: Target, seconds: int, connections: int) -> Sample:
    return asyncio.run(_python_load(target, seconds, connections))


async def _python_load(target: Target, seconds: int, connections: int) -> Sample:
    host, port = target.url.removeprefix("http://").split(":")
    body = json.dumps(MESSAGE).encode()
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n")
    if target.token:
        head += f"Authorization: Bearer {target.token}\r\n"
    request = head.encode() + b"\r\n" + body
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                writer.write(request)
                headers = await reader.readuntil(b"\r\n\r\n")
                status = headers[9:12]
                assert status == b"200", headers
                length = int(re.search(rb"(?i)content-length: *(\d+)", headers).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - began)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return Sample(len(latencies) / elapsed, latencies[len(latencies) // 2] * 1000,
                  latencies[int(len(latencies) * 0.99)] * 1000)


# --- main -------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds; each round measures every target once")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--no-token", action="store_true", help="also measure an engine without any token")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also measure an engine (with the token) from another checkout, e.g. "
                        "`git archive <commit> | tar -x -C DIR`: before/after in one run")
    parser.add_argument("--python-load", action="store_true", help="use the Python generator even with wrk")
    parser.add_argument("--install-wrk", action="store_true", help="apt-get install wrk first if missing")
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    if args.install_wrk and not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    use_wrk = bool(shutil.which("wrk")) and not args.python_load
    generator = (f"wrk -t1 -c{args.connections}" if use_wrk else
                 f"Python asyncio, {args.connections} connections (competes with the server for the CPU)")
    print(f"HTTP floor benchmark: {args.runs} rounds x {args.seconds} s per target; load generator: {generator}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        targets = [start_floor(), start_engine(tmp, "engine", TOKEN)]
        if args.no_token:
            targets.append(start_engine(tmp, "engine-open", None))
        if args.baseline:
            targets.append(start_engine(tmp, "baseline", TOKEN, args.baseline.resolve()))
        results: dict[str, list[Sample]] = {t.name: [] for t in targets}
        try:
            for target in targets:  # warm-up: JIT-free Python still fills caches, pools and buckets
                _measure(target, 2, args.connections, tmp, use_wrk)
            for round_ in range(args.runs):
                order = targets if round_ % 2 == 0 else list(reversed(targets))
                for target in order:
                    sample = _measure(target, args.seconds, args.connections, tmp, use_wrk)
                    results[target.name].append(sample)
                    print(f"  round {round_ + 1} {target.name:<12} {sample.rps:8,.0f} req/s  "
                          f"p50 {sample.p50_ms:5.2f} ms  p99 {sample.p99_ms:6.2f} ms  "
                          f"server CPU {sample.cpu_us:5.0f} us/req", flush=True)
        finally:
            for target in targets:
                stop(target)
    return _report(results)


def _measure(target: Target, seconds: int, connections: int, scratch: Path, use_wrk: bool) -> Sample:
    before = cpu_seconds(target.proc.pid)
    if use_wrk:
        sample = run_wrk(target, seconds, connections, scratch)
    else:
        sample = run_python(target, seconds, connections)
    sample.cpu_us = (cpu_seconds(target.proc.pid) - before) / (sample.rps * seconds) * 1e6
    return sample


def _report(results: dict[str, list[Sample]]) -> int:
    medians = {name: Sample(*(statistics.median(getattr(s, key) for s in samples)
                              for key in ("rps", "p50_ms", "p99_ms", "cpu_us")))
               for name, samples in results.items()}
    print("medians")
    for name, m in medians.items():
        print(f"  {name:<12} {m.rps:8,.0f} req/s  p50 {m.p50_ms:5.2f} ms  p99 {m.p99_ms:6.2f} ms  "
              f"server CPU {m.cpu_us:5.0f} us/req")
    floor = medians["floor"]
    for name, m in medians.items():
        if name != "floor":
            ratios = [e.rps / f.rps for e, f in zip(results[name], results["floor"], strict=True)]
            print(f"  {name} / floor: {m.rps / floor.rps:.2f} of the floor's req/s (per round: "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}); CPU per request floor / {name}: "
                  f"{floor.cpu_us / m.cpu_us:.2f}; target >= {TARGET_RATIO}, p50 <= {TARGET_P50_MS} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
