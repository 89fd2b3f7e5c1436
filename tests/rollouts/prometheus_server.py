"""A real Prometheus server for tests, scraping one engine every 500 ms (and evaluating rule files as often).

``ensure_installed()`` installs the Debian package ``prometheus`` when the
binary is absent (CI runs as root on this machine); when that is impossible
the test fails with the reason: it is never skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import processes
from tests.support.apt import ensure_command
from tests.support.paths import free_port

CONFIG = """global:
  scrape_interval: 500ms
  evaluation_interval: 500ms
rule_files: {rule_files}
scrape_configs:
  - job_name: caxton
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
"""


def ensure_installed() -> str:
    if Path("/usr/bin/prometheus").exists() and not shutil.which("prometheus"):
        return "/usr/bin/prometheus"
    return ensure_command("prometheus", package="prometheus")


@contextmanager
def running_prometheus(directory: Path, target: str, rule_files: Sequence[Path] = ()) -> Iterator[str]:
    """Start Prometheus on a free port scraping ``target`` (host:port) with ``rule_files``; yield its URL."""
    binary = ensure_installed()
    directory.mkdir(parents=True, exist_ok=True)
    rules = json.dumps([str(path) for path in rule_files])  # a YAML flow sequence
    (directory / "prometheus.yml").write_text(CONFIG.format(target=target, rule_files=rules))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (directory / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(url, proc, directory)
        _wait_scraping(url, directory)
        yield url
    finally:
        processes.stop(proc)
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}: {(directory / 'prometheus.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"prometheus not ready after 30 s: {(directory / 'prometheus.log').read_text()[-2000:]}")


def _wait_scraping(url: str, directory: Path) -> None:
    """Prometheus applies new targets after a few seconds: wait until the engine's ``up`` is 1."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = httpx.get(url + "/api/v1/query", params={"query": 'up{job="caxton"}'}, timeout=2.0).json()
        if any(sample["value"][1] == "1" for sample in result["data"]["result"]):
            return
        time.sleep(0.2)
    pytest.fail(f"prometheus did not scrape the engine within 30 s: {(directory / 'prometheus.log').read_text()[-2000:]}")
