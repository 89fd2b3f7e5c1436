"""The web console's figures: the overview of 1,000 agents (server time), and how soon an event shows.

Run: .venv/bin/python benchmarks/console_bench.py [--agents 1000] [--runs 20] [--events 10]
Prints medians; nothing here is asserted (targets, issue 17: overview <= 300 ms server time at
1,000 agents; an event on an open page <= 250 ms after it happens on the engine).

- Overview: a real engine holding ``--agents`` WASM agents; ``GET /ui`` ``--runs`` times; the
  server's own ``Server-Timing: render`` (reading the engine and rendering the page) and the
  client's wall time on loopback.
- Event to page: Debian's chromium (Playwright, as tests/ui) on one agent's page; the agent is
  suspended and resumed through the API, and the time from sending that request to the page
  showing the new state is measured here (the page checked on every animation frame). That
  includes the request itself and Playwright's round trips, so it is an upper bound of the
  event's way to the page.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from caxton.client import agents as agent_api
from tests.engine.helpers import wasm_spec, wat_module
from tests.support.engine import running_engine

TIMING = re.compile(r"render;dur=([0-9.]+)")


def _config(tmp: str) -> Path:
    """Memory off; a WASM memory budget that holds 1,000 agents."""
    path = Path(tmp) / "caxton.yaml"
    path.write_text("server:\n  max_wasm_memory: 32GiB\nmemory:\n  enabled: false\n")
    return path


def overview(url: str, runs: int) -> tuple[list[float], list[float], int]:
    server, wall = [], []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(3):
            http.get("/ui")  # warm up (templates compiled, caches filled)
        for _ in range(runs):
            began = time.perf_counter()
            response = http.get("/ui")
            wall.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.text[:500]
            found = TIMING.search(response.headers.get("server-timing", ""))
            assert found, "no Server-Timing header"
            server.append(float(found.group(1)))
    return server, wall, len(response.content)


def event_to_page(url: str, agent: str, events: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    from tests.ui.browser import CHROMIUM_ARGS, chromium_path

    times = []
    with sync_playwright() as driver, tempfile.TemporaryDirectory() as profile:
        context = driver.chromium.launch_persistent_context(profile, executable_path=chromium_path(), headless=True,
                                                           args=CHROMIUM_ARGS, bypass_csp=True)  # wait_for_function evaluates a string
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(f"{url}/ui/agent?name={agent}")
        page.wait_for_function("document.getElementById('live-state').textContent.startsWith('live')")
        current = "document.querySelector('.states li.current').textContent"
        with httpx.Client(base_url=url, timeout=30) as http:
            for n in range(events):
                before = page.evaluate(current)
                began = time.perf_counter()
                http.post(f"/api/v1/agents/{agent}/{'suspend' if n % 2 == 0 else 'resume'}").raise_for_status()
                page.wait_for_function(f"{current} !== {before!r}", polling="raf")
                times.append((time.perf_counter() - began) * 1000)
                page.wait_for_timeout(300)  # the agent settles (Draining -> Stopped) before the next one
        context.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()
    module = wat_module()
    with tempfile.TemporaryDirectory() as tmp, running_engine(Path(tmp) / "data", config=_config(tmp)) as engine:
        client = engine.client(timeout=60)
        began = time.perf_counter()
        for i in range(args.agents):
            agent_api.deploy(client, wasm_spec(f"agent-{i:04d}"), module)
        print(f"deployed {args.agents} agents in {time.perf_counter() - began:.1f} s")
        server, wall, size = overview(engine.url, args.runs)
        print(f"GET /ui at {args.agents} agents ({size / 1e3:.0f} kB): server median {statistics.median(server):.1f} ms "
              f"(min {min(server):.1f}, max {max(server):.1f}), wall median {statistics.median(wall):.1f} ms "
              f"over {args.runs} runs")
        if args.events:
            times = event_to_page(engine.url, "agent-0000", args.events)
            print(f"event to page (suspend/resume, request included): median {statistics.median(times):.0f} ms "
                  f"(min {min(times):.0f}, max {max(times):.0f}) over {len(times)} events")


if __name__ == "__main__":
    main()
