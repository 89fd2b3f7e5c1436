"""Nothing open by accident: body refused before it is read, foreign Origin/Host, JSON only, no open 0.0.0.0."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from caxton.client import status as status_api
from tests.engine.helpers import SCORER_WASM, wasm_spec
from tests.security.auth_tokens import auth_engine
from tests.support.engine import EngineProcess, running_engine
from tests.support.paths import free_port

V1 = "/api/v1"
FORTY_MB = 40 * 1024 * 1024
SUSPENDING = ("Draining", "Suspended")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _post_huge_unauthenticated(port: int) -> bytes:
    """POST a declared 40 MB body, send its first 64 KiB, read the answer, then try to send the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST {V1}/applies HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {FORTY_MB}\r\n\r\n".encode() + b"[" * 65536)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        try:
            for _ in range(FORTY_MB // 65536):
                sock.sendall(b"[" * 65536)
        except OSError:
            pass  # the engine closed the connection: it never reads the body
        return answer


def test_an_unauthenticated_40mb_post_is_refused_without_reading_it(tmp_path: Path) -> None:
    with auth_engine(tmp_path) as served:
        assert served.engine.proc is not None
        pid = served.engine.proc.pid
        assert served.call("GET", V1 + "/state", "reader").status_code == 200  # warm
        before = _rss_kb(pid)
        for _ in range(3):
            answer = _post_huge_unauthenticated(served.engine.port)
            assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        grown_mb = (_rss_kb(pid) - before) / 1024
        assert grown_mb < 30, f"the engine grew by {grown_mb:.0f} MB on refused bodies"
        assert served.call("GET", V1 + "/ready").status_code == 200


def _deploy(url: str, name: str) -> None:
    body = {"spec": wasm_spec(name), "module": base64.b64encode(SCORER_WASM).decode()}
    assert httpx.put(f"{url}{V1}/agents/{name}", json=body, timeout=30).status_code == 200


def test_a_web_page_cannot_drive_a_local_engine_without_tokens(tmp_path: Path) -> None:
    with running_engine(tmp_path) as engine:
        url = engine.url
        _deploy(url, "scorer")
        form = {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
        refused = httpx.post(f"{url}{V1}/agents/scorer/suspend", headers=form, content=b"a=b")
        assert refused.status_code == 403 and "cross-origin" in refused.json()["error"]["message"]
        bodiless = httpx.post(f"{url}{V1}/agents/scorer/suspend", headers={"Origin": "http://evil.example"})
        assert bodiless.status_code == 403
        same_port_page = httpx.post(f"{url}{V1}/agents/scorer/suspend",
                                    headers={"Origin": f"http://127.0.0.1:{engine.port}"})
        assert same_port_page.status_code == 403 and "needs a token" in same_port_page.json()["error"]["message"]
        other_local_port = httpx.get(f"{url}{V1}/state", headers={"Origin": "http://localhost:3000"})
        assert other_local_port.status_code == 403
        rebinding = httpx.get(f"{url}{V1}/state", headers={"Host": f"evil.example:{engine.port}"})
        assert rebinding.status_code == 403 and "Host" in rebinding.json()["error"]["message"]
        plain_text = httpx.post(f"{url}{V1}/agents/scorer/messages", content=b'{"content": "x"}',
                                headers={"Content-Type": "text/plain"})
        assert plain_text.status_code == 415
        assert httpx.get(f"{url}{V1}/agents/scorer").json()["state"] not in SUSPENDING
        # the CLI's way (no Origin, JSON) still works, and so does a same-origin read
        assert httpx.get(f"{url}{V1}/state", headers={"Origin": f"http://localhost:{engine.port}"}).status_code == 200
        assert httpx.post(f"{url}{V1}/agents/scorer/messages", json={"content": {"text": "hi"}}).status_code == 200
        assert httpx.post(f"{url}{V1}/agents/scorer/suspend").status_code == 200
        assert httpx.get(f"{url}{V1}/agents/scorer").json()["state"] in SUSPENDING
        cli = subprocess.run([sys.executable, "-m", "caxton", "agents", "resume", "scorer", "--engine", url],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr


def _start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    engine = EngineProcess(tmp_path / "data", env=env)
    command = [*engine.command(), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=engine.environment(),
                          cwd=tmp_path)


def test_no_token_on_a_non_loopback_address_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    result = _start(tmp_path, "--host", "0.0.0.0", "--port", str(port))
    assert result.returncode == 1
    assert f"refusing to serve 0.0.0.0:{port} without a token: set security.tokens_file or CAXTON_API_TOKEN, " \
           "or pass --insecure-no-auth" in result.stderr
    assert "Traceback" not in result.stderr


def test_insecure_no_auth_starts_and_says_so_loudly(tmp_path: Path) -> None:
    with running_engine(tmp_path, args=["--host", "0.0.0.0", "--insecure-no-auth"]) as engine:
        assert httpx.get(f"{engine.url}{V1}/state").status_code == 200  # connects to 127.0.0.1 only
        assert "WARNING" in engine.log_text() and "INSECURE" in engine.log_text()


def test_a_token_makes_a_non_loopback_address_fine(tmp_path: Path) -> None:
    with running_engine(tmp_path, token="t0ken-for-tests", args=["--host", "0.0.0.0"]) as engine:
        assert httpx.get(f"{engine.url}{V1}/state").status_code == 401
        assert status_api.health(engine.client()).status == "healthy"


def test_caxton_up_refuses_too(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "caxton", "up", "--host", "0.0.0.0", "--port", str(port),
                             "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=EngineProcess(tmp_path / "data").environment())
    assert result.returncode == 1, result.stderr
    assert f"refusing to serve 0.0.0.0:{port} without a token" in result.stderr


def test_token_create_makes_a_token_a_real_engine_accepts(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    made = subprocess.run([sys.executable, "-m", "caxton", "token", "create", "ci", "--role", "read",
                           "--file", str(tokens_file)], capture_output=True, text=True, timeout=60,
                          env=EngineProcess(tmp_path / "data").environment())
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("cxt_") and made.stdout.count("\n") == 1
    stored = tokens_file.read_text()
    assert token not in stored and "scrypt$" in stored and "name: ci" in stored
    printed = subprocess.run([sys.executable, "-m", "caxton", "token", "create", "bot", "--role", "message",
                              "--agent", "scorer", "--expires", "30d", "-o", "json"], capture_output=True, text=True,
                             timeout=60, env=EngineProcess(tmp_path / "data").environment())
    entry = json.loads(printed.stdout)["entry"]
    assert entry["agents"] == ["scorer"] and entry["expires"].endswith("Z")
    data = yaml.safe_load(tokens_file.read_text())
    data["tokens"].append(entry)
    tokens_file.write_text(yaml.safe_dump(data))
    with running_engine(tmp_path, env={"CAXTON_TOKENS_FILE": str(tokens_file)}) as engine:
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{engine.url}{V1}/state", headers=headers).status_code == 200
        refused = httpx.post(f"{engine.url}{V1}/agents/x/suspend", headers=headers)
        assert refused.status_code == 403 and "'deploy' role" in refused.json()["error"]["message"]
        cli = subprocess.run([sys.executable, "-m", "caxton", "agents", "list", "--engine", engine.url,
                              "--token", token], capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr


def test_a_bad_tokens_file_stops_the_start_with_where_and_why(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text("tokens:\n  - name: x\n    roles: [read]\n    hash: the-token-itself\n")
    result = _start(tmp_path, env={"CAXTON_TOKENS_FILE": str(tokens_file)})
    assert result.returncode == 1
    assert f"{tokens_file}: tokens[0] (x): hash must be a scrypt hash, never the token itself" in result.stderr
    tokens_file.write_text("tokens:\n  - name: x\n    roles: [superuser]\n    hash: scrypt$1$1$1$AA==$AA==\n")
    assert "roles must be a non-empty list of read, message" in _start(
        tmp_path, env={"CAXTON_TOKENS_FILE": str(tokens_file)}).stderr
