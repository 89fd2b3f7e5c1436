"""Cost of durable conversation history on the message path (issue 13).

Appends one user/assistant pair per message (what a config agent does after
each reply) to the in-memory store and to the durable one (the engine's
database, ``synchronous=NORMAL``, cap trimming on every write), 50
conversations round-robin, and reports the median and p99 per message and
the difference: the latency a message gains before its reply is sent. Also
the cost of ``AgentLogs.add`` + its share of a flush.

    .venv/bin/python benchmarks/history_bench.py [--messages 3000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caxton.engine.serving.conversations import DurableConversationStore, InMemoryConversationStore
from caxton.llm.conversations import ConversationStore, Turn
from caxton.engine.state.history_db import HistoryDB
from caxton.engine.logs import AgentLogs
from caxton.engine.state.store import Store


def per_message(store: ConversationStore, messages: int) -> list[float]:
    times = []
    for n in range(messages):
        cid = f"c{n % 50}"
        turns = [Turn(role="user", content=f"question {n} " * 8), Turn(role="assistant", content=f"answer {n} " * 30)]
        start = time.perf_counter()
        store.begin("agent", cid, limit=100)
        store.history("agent", cid)
        store.append("agent", cid, turns)
        times.append(time.perf_counter() - start)
    return times


def logs_per_line(db: HistoryDB, lines: int) -> float:
    logs = AgentLogs()
    logs.attach(db, background=False)
    start = time.perf_counter()
    for n in range(lines):
        logs.add(f"agent-{n % 10}", "info", f"line {n}", revision=1)
        if n % 250 == 249:  # ~ what one 0.25 s flush carries at 1,000 lines/s
            logs.flush()
    logs.flush()
    return (time.perf_counter() - start) / lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"memory": [], "durable": []}
    log_costs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp))
            db = HistoryDB(store)
            for name, conversations in (("memory", InMemoryConversationStore()),
                                        ("durable", DurableConversationStore(db))):
                times = sorted(per_message(conversations, args.messages))
                rows[name].append((statistics.median(times), times[int(len(times) * 0.99)]))
            log_costs.append(logs_per_line(db, 5000))
            db.close()
            store.close()
    for name, runs in rows.items():
        p50 = statistics.median(r[0] for r in runs) * 1e6
        p99 = statistics.median(r[1] for r in runs) * 1e6
        print(f"{name:8s} history per message  p50 {p50:8.1f} us  p99 {p99:8.1f} us")
    added = statistics.median(d[0] - m[0] for d, m in zip(rows["durable"], rows["memory"], strict=True)) * 1e6
    print(f"added by the store per message (p50): {added:.1f} us")
    print(f"agent log line (add + share of flush): {statistics.median(log_costs) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
