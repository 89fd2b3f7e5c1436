"""Rollout figures: router overhead per message, rollback time, breach-to-verdict time.

    .venv/bin/python benchmarks/rollout_bench.py [--runs 5]

- router: ``Router.acquire`` + ``release`` per message (what the message path adds to pick a
  revision), for an agent without rollout, a sticky canary with pinned conversations, and new
  conversations during a canary (hash + pin + journal); plus ``Window.record`` (the analysis'
  per-message cost). Medians of ``--runs`` runs of 200,000 calls each.
- rollback: from the failing analysis verdict to the route sending 100 % to the stable revision
  (``verdict_to_stable_ms`` measured inside the controller), and to the first message served by the
  stable revision afterwards as the load generator saw it. In-process engine, faulty canary
  (every 5th message fails), 3 load threads.
- breach-to-verdict: from the first message the faulty canary failed to the rollback, interval 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from caxton.engine.core import Engine
from caxton.engine.intake import Prepared
from caxton.engine.rollouts.window import Window
from caxton.engine.serving.router import Backend, Route, Router
from caxton.engine.serving.runtime import ServingRuntime
from caxton.engine.state.records import Source
from caxton.spec.project import ProjectConfig
from tests.rollouts import agents
from tests.rollouts.conftest import Load, Progress, sender

CALLS = 200_000


class _Runtime:
    def start(self) -> None: ...

    def handle(self, envelope: dict[str, Any]) -> Any:
        return None

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {}


def _serving(revision: int) -> ServingRuntime:
    return ServingRuntime(_Runtime(), agent_id="a", name="a", kind="wasm", revision=revision, max_message_size=1)


def _per_call_us(router: Router, conversations: list[str | None]) -> float:
    count = len(conversations)
    began = time.perf_counter()
    for index in range(CALLS):
        serving = router.acquire("a", conversations[index % count])
        serving.release()  # type: ignore[union-attr]
    return (time.perf_counter() - began) / CALLS * 1e6


def router_figures(runs: int) -> dict[str, float]:
    one, two = _serving(1), _serving(2)
    cases: dict[str, list[float]] = {"no rollout": [], "canary, pinned conversations": [],
                                     "canary, new conversations": [], "no conversation id": [],
                                     "window.record": []}
    known = [f"conversation-{i}" for i in range(10_000)]
    for _ in range(runs):
        router = Router()
        router.swap("a", one)
        cases["no rollout"].append(_per_call_us(router, known))
        router.set(Route("a", (Backend(two, 30), Backend(one, 70)), sticky=True))
        router.pins("a").journal = []
        cases["canary, pinned conversations"].append(_per_call_us(router, known))
        fresh = [f"new-{time.perf_counter_ns()}-{i}" for i in range(CALLS)]
        cases["canary, new conversations"].append(_per_call_us(router, fresh))
        cases["no conversation id"].append(_per_call_us(router, [None]))
        window = Window()
        began = time.perf_counter()
        for index in range(CALLS):
            window.record(0.0004 + index % 7 * 1e-5, index % 50 != 0)
        cases["window.record"].append((time.perf_counter() - began) / CALLS * 1e6)
    return {name: statistics.median(values) for name, values in cases.items()}


def rollback_once(interval: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(ProjectConfig.model_validate({"memory": {"enabled": False}}), Path(tmp))
        engine.start()
        try:
            engine.deploy(agents.spec("echo", 1), agents.module(1))
            rollout = {"strategy": "canary", "steps": [20, 50, 100], "interval": interval,
                       "analysis": {"min_requests": 10}}
            progress = Progress()
            with Load(sender(engine), threads=3) as load:
                time.sleep(0.2)
                started = engine.rollouts.start(Prepared.of(agents.spec("echo", 2, rollout), agents.module(2, faulty=True)),
                                                Source(actor="bench"), strategy="canary", listener=progress)
                done = engine.rollouts.wait(started["rollout"], timeout=30)
                time.sleep(0.2)
            assert done.status == "rolled_back", done.reason
            verdict = progress.finished_at()
            breach = min(r.done for r in load.failures())
            stable_after = min(r.done for r in load.replies if r.revision == 1 and r.sent >= verdict)
            return {"verdict_to_stable_ms": done.timings["verdict_to_stable_ms"],
                    "verdict_to_first_stable_reply_ms": (stable_after - verdict) * 1000,
                    "breach_to_verdict_ms": (verdict - breach) * 1000}
        finally:
            engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()

    print(f"router overhead per message (median of {args.runs} runs x {CALLS:,} calls)")
    for name, value in router_figures(args.runs).items():
        print(f"  {name:32s} {value:7.2f} us")

    samples = [rollback_once(args.interval) for _ in range(args.runs)]
    print(f"\nfaulty canary (20 % failures), interval {args.interval:g} s, median of {args.runs} rollouts")
    for key in samples[0]:
        values = [s[key] for s in samples]
        print(f"  {key:32s} {statistics.median(values):9.3f} ms  (max {max(values):.3f})")


if __name__ == "__main__":
    main()
