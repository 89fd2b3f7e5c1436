"""Tool-loop figures: the cost of one WASM tool call in a config agent's tool loop, the model excluded.

    .venv/bin/python benchmarks/tool_loop_bench.py [--runs 5] [--calls 2000] [--json]

An in-process engine (no vector memory) serves the quickstart's ``word-count`` WASM tool.
Three timings, each over ``--calls`` calls, p50 and p99 per call, medians of ``--runs`` runs:

- ``bare``: ``Engine.send("word-count", arguments)``, the message path a tool call takes
  (router, sandbox, metrics, rollout window): what the call costs without the loop;
- ``loop``: ``ToolLoop.run`` with a scripted model (a function that asks for one call, then
  answers: no provider, no templates, no HTTP): one call per message, timed per message;
- ``loop x4``: the same with four calls in one model turn (they run in parallel), per call.

The loop's overhead per call is ``loop - bare`` (target: the loop per WASM tool call <= 1 ms p50).
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from caxton.engine.core import Engine  # noqa: E402
from caxton.engine.tools import EngineWasmTools  # noqa: E402
from caxton.llm import providers as prov  # noqa: E402
from caxton.llm.tools import base, loop, wasm  # noqa: E402
from caxton.spec.project import ProjectConfig  # noqa: E402

EXAMPLES = REPO / "examples" / "quickstart"
TEXT = {"text": "the quick brown fox jumps over the lazy dog"}
MESSAGES = (prov.ChatMessage(role="user", content="count"),)


def word_count_spec() -> dict[str, Any]:
    import yaml

    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "agents" / "word-count.md").read_text().split("---\n")[1])
    return spec


def scripted(calls: int) -> Callable[[tuple[prov.ChatMessage, ...]], prov.Completion]:
    """A model that asks for ``calls`` word-count calls, then answers once it has their results."""
    asked = tuple(prov.ToolCall(f"call_{i}", "word-count", json.dumps(TEXT)) for i in range(calls))

    def ask(messages: tuple[prov.ChatMessage, ...]) -> prov.Completion:
        if messages[-1]["role"] == "tool":
            return prov.Completion(text="done", model="scripted")
        return prov.Completion(text="", model="scripted", tool_calls=asked)

    return ask


def timed(run: Callable[[], Any], count: int, per: int = 1) -> tuple[float, float]:
    """p50 and p99 (us) of ``run`` per call (``per`` calls each)."""
    samples = []
    for _ in range(count // per):
        began = time.perf_counter()
        run()
        samples.append((time.perf_counter() - began) / per * 1e6)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def measure(engine: Engine, tools: loop.ToolLoop, calls: int) -> dict[str, tuple[float, float]]:
    def with_loop(per: int) -> Callable[[], Any]:
        ask = scripted(per)

        def run() -> None:
            _, records = tools.run(ask, MESSAGES, time.monotonic() + 10)
            assert all(r.outcome == "ok" for r in records), records

        return run

    return {
        "bare": timed(lambda: engine.send("word-count", TEXT), calls),
        "loop": timed(with_loop(1), calls),
        "loop x4": timed(with_loop(4), calls, per=4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        engine = Engine(ProjectConfig.model_validate({"memory": {"enabled": False}}), Path(data))
        engine.start()
        try:
            engine.deploy(word_count_spec(), (EXAMPLES / "wasm" / "word-count.wasm").read_bytes())
            source = wasm.WasmToolSource(EngineWasmTools(engine.store, engine.send))
            registry = base.build_registry(["word-count"], base.ToolContext(agent="bench"), [source])
            tools = loop.ToolLoop(registry, agent="bench", max_calls=10, call_timeout=10.0)
            measure(engine, tools, 200)  # warm-up: instances, code paths
            runs = [measure(engine, tools, args.calls) for _ in range(args.runs)]
        finally:
            engine.stop()
    rows = {name: (statistics.median(r[name][0] for r in runs), statistics.median(r[name][1] for r in runs))
            for name in runs[0]}
    overhead = rows["loop"][0] - rows["bare"][0]
    if args.json:
        print(json.dumps({"p50_us": {k: round(v[0], 1) for k, v in rows.items()},
                          "p99_us": {k: round(v[1], 1) for k, v in rows.items()},
                          "loop_overhead_p50_us": round(overhead, 1), "runs": args.runs, "calls": args.calls}))
        return
    for name, (p50, p99) in rows.items():
        print(f"{name:<10} p50 {p50:8.1f} us  p99 {p99:8.1f} us  (per WASM tool call)")
    each = ", ".join(f"{r['loop'][0]:.0f}" for r in runs)
    print(f"loop overhead per call (loop - bare, p50): {overhead:.1f} us; loop p50 of each run: {each} us")


if __name__ == "__main__":
    main()
