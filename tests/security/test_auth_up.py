"""``caxton up`` with a tokens file: its own reconcile loop deploys with an in-process token named caxton-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.security.auth_tokens import write_tokens
from tests.support.engine import EngineProcess
from tests.support.paths import EXAMPLES, free_port


def test_up_with_tokens_applies_and_records_caxton_up(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "agents").mkdir(parents=True)
    (root / "agents" / "summarizer.toml").write_bytes((EXAMPLES / "agents" / "summarizer.toml").read_bytes())
    tokens = write_tokens(root / "tokens.yaml", {"reader": (["read"], None, None)})
    port = free_port()
    settings = {"server": {"port": port}, "memory": {"enabled": False}, "security": {"tokens_file": "tokens.yaml"}}
    (root / "caxton.yaml").write_text(yaml.safe_dump(settings))
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "caxton", "up", "--poll-interval", "100ms"], cwd=root,
                                stdout=out, stderr=subprocess.STDOUT, env=EngineProcess(tmp_path / "d").environment())
    url, reader = f"http://127.0.0.1:{port}/api/v1", {"Authorization": f"Bearer {tokens['reader']}"}
    try:
        deadline = time.monotonic() + 60
        agents: list[dict[str, object]] = []
        while not agents:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
            try:
                agents = httpx.get(f"{url}/agents", headers=reader).json().get("agents", [])
            except httpx.TransportError:
                continue
        assert httpx.get(f"{url}/agents").status_code == 401
        events = httpx.get(f"{url}/events", headers=reader).json()["events"]
        assert any("caxton-up" in str(event.get("actor")) for event in events), events
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
