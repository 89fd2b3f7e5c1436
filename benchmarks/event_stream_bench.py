"""Event stream latency: from an event happening on the engine to its arrival on an open stream.

A real engine (``caxton server start``, memory off) with one WASM agent; ``--streams`` clients hold
``GET /api/v1/events/stream`` open (one measures, the others only read). Each round suspends or
resumes the agent through the API and waits for its ``transition`` event on the measuring stream:

- commit -> arrival: the event's ``at`` (stamped by the engine in the transaction that records it)
  to the moment the stream client has parsed its frame (one machine, one wall clock);
- request -> arrival: from sending the suspend/resume to that moment (what a person watching sees).

Run: .venv/bin/python benchmarks/event_stream_bench.py [--events 200] [--runs 3] [--streams 1 20]
Prints median and p95 per run; nothing is asserted (target: <= 250 ms, issue 17).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from queue import Empty, Queue

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from caxton.client import agents as agent_api
from tests.engine.helpers import wasm_spec, wat_module
from tests.support.engine import no_memory, running_engine


def _read(url: str, arrivals: Queue[tuple[float, dict[str, object]]] | None, ready: threading.Event,
          stop: threading.Event) -> None:
    """Hold a stream open; put each ``event`` frame (arrival wall time, data) on ``arrivals``."""
    with httpx.stream("GET", url + "/api/v1/events/stream", timeout=60) as response:
        ready.set()
        kind = ""
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "event" and arrivals is not None:
                arrivals.put((time.time(), json.loads(line[6:])))


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run(url: str, events: int, streams: int) -> tuple[list[float], list[float]]:
    arrivals: Queue[tuple[float, dict[str, object]]] = Queue()
    stop = threading.Event()
    readies = [threading.Event() for _ in range(streams)]
    readers = [threading.Thread(target=_read, args=(url, arrivals if n == 0 else None, readies[n], stop), daemon=True)
               for n in range(streams)]
    for reader in readers:
        reader.start()
    for ready in readies:
        ready.wait(30)
    time.sleep(0.2)  # every stream subscribed (the headers come once it is)
    commit, request = [], []
    with httpx.Client(base_url=url + "/api/v1", timeout=30) as client:
        for n in range(events):
            action = "suspend" if n % 2 == 0 else "resume"
            sent = time.time()
            assert client.post(f"/agents/bench/{action}", json={}).status_code == 200
            while True:
                try:
                    arrived, event = arrivals.get(timeout=10)
                except Empty:
                    raise SystemExit(f"event {n} never arrived on the stream") from None
                if event["what"] == "transition":
                    break
            commit.append((arrived - _at(str(event["at"]))) * 1000)
            request.append((arrived - sent) * 1000)
    stop.set()
    return commit, request


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_engine(Path(tmp), config=no_memory(Path(tmp))) as engine:
        with engine.client() as client:
            agent_api.deploy(client, wasm_spec("bench"), wat_module())
        for streams in args.streams:
            print(f"{streams} stream(s) open, {args.events} events per run:")
            for number in range(1, args.runs + 1):
                commit, request = run(engine.url, args.events, streams)
                print(f"  run {number}: commit -> arrival median {statistics.median(commit):.2f} ms, "
                      f"p95 {p95(commit):.2f} ms, max {max(commit):.2f} ms; request -> arrival median "
                      f"{statistics.median(request):.2f} ms, p95 {p95(request):.2f} ms")


if __name__ == "__main__":
    main()
