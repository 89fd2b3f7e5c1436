"""Backup figures: time and size of an online backup, and message latency while it runs.

    .venv/bin/python benchmarks/backup_bench.py [--agents 1000] [--entities 100000] [--json]

An in-process engine over a fresh data directory holds ``--agents`` agents (one WASM
scorer, the rest config agents, each deployed twice: two revisions) and ``--entities``
memory entities (generated sentences, random unit vectors: a backup copies pages, so
real embeddings would change nothing here; they are written through the memory
store's SQL path before the engine starts). Then:

- idle: 3 threads send messages to the WASM scorer for a fixed window; p50/p99.
- backup: the same load runs while ``Engine.backup_now`` (what
  ``POST /api/v1/backups`` does) writes the .tar.gz; the backup's time and size, and the
  p50/p99 of the messages that started during it.
- verify: ``caxton.engine.backup.verify`` of that archive (offline).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from memory_bench import fill  # noqa: E402

from caxton.engine import backup  # noqa: E402
from caxton.engine.backup_schedule import memory_source  # noqa: E402
from caxton.engine.core import Engine  # noqa: E402
from caxton.spec.project import ProjectConfig  # noqa: E402
from tests.engine.helpers import SCORER_WASM, config_spec, wasm_spec  # noqa: E402

THREADS = 3


def populate_memory(path: Path, count: int) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((count, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"generated fact number {i} about topic {i % 97}" for i in range(count)]
    fill(path, texts, vectors)


def load(engine: Engine, until: threading.Event, samples: list[tuple[float, float]]) -> None:
    while not until.is_set():
        began = time.perf_counter()
        engine.send("scorer", "benchmark message", None)
        samples.append((began, time.perf_counter() - began))


def latencies(samples: list[tuple[float, float]], start: float, end: float) -> dict[str, float]:
    window = sorted(took for began, took in samples if start <= began < end)
    if not window:
        return {"messages": 0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {"messages": len(window), "p50_ms": statistics.median(window) * 1e3,
            "p99_ms": window[min(len(window) - 1, int(len(window) * 0.99))] * 1e3}


def run(agents: int, entities: int, workdir: Path, *, plain: bool = False) -> dict[str, Any]:
    data_dir = workdir / "data"
    data_dir.mkdir()
    if entities:
        populate_memory(data_dir / "memory.db", entities)
    engine = Engine(ProjectConfig(), data_dir)
    engine.start()
    try:
        engine.deploy(wasm_spec("scorer"), SCORER_WASM)
        for i in range(agents - 1):
            engine.deploy(config_spec(f"agent-{i}"), None)
            engine.deploy(config_spec(f"agent-{i}", version="1.1.0"), None)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        threads = [threading.Thread(target=load, args=(engine, stop, samples), daemon=True) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # warm up
        idle_start = time.perf_counter()
        time.sleep(3.0)
        backup_start = time.perf_counter()
        if plain:
            out = data_dir / backup.BACKUP_DIR / backup.default_name().removesuffix(".gz")
            manifest = {**backup.create(engine.store, memory_source(engine), out), "path": str(out)}
        else:
            manifest = engine.backup_now()
        backup_end = time.perf_counter()
        stop.set()
        for thread in threads:
            thread.join()
        verify_start = time.perf_counter()
        backup.verify(Path(manifest["path"]))
        verify_seconds = time.perf_counter() - verify_start
        return {
            "agents": manifest["counts"]["agents"], "revisions": manifest["counts"]["revisions"],
            "memory_entities": manifest["counts"].get("memory_entities", 0),
            "backup_seconds": backup_end - backup_start, "archive_bytes": manifest["size"],
            "databases_bytes": sum(m["size"] for m in manifest["members"]),
            "verify_seconds": verify_seconds,
            "idle": latencies(samples, idle_start, backup_start),
            "during_backup": latencies(samples, backup_start, backup_end),
        }
    finally:
        engine.stop()


def render(r: dict[str, Any]) -> str:
    lines = [
        f"engine: {r['agents']} agents, {r['revisions']} revisions, {r['memory_entities']:,} memory entities",
        f"backup (POST /api/v1/backups path)   {r['backup_seconds']:6.2f} s   "
        f"archive {r['archive_bytes'] / 1e6:.1f} MB "
        f"(archive of {r['databases_bytes'] / 1e6:.1f} MB of databases)",
        f"verify (offline)                     {r['verify_seconds']:6.2f} s",
    ]
    for name in ("idle", "during_backup"):
        w = r[name]
        lines.append(f"messages {name.replace('_', ' '):<14} n={w['messages']:<6} p50 {w['p50_ms']:6.2f} ms   "
                     f"p99 {w['p99_ms']:6.2f} ms")
    if r["idle"]["p99_ms"]:
        lines.append(f"p99 during backup / idle p99: {r['during_backup']['p99_ms'] / r['idle']['p99_ms']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--plain", action="store_true", help="write an uncompressed .tar (what `--out x.tar` does)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="caxton-backup-bench-") as tmp:
        results = run(args.agents, args.entities, Path(tmp), plain=args.plain)
    print(json.dumps(results, indent=2) if args.json else render(results))


if __name__ == "__main__":
    main()
