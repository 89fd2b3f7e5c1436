"""TLS (issue 12, item 3): the engine serves https with server.tls, the CLI checks it against --ca-cert.

Real engines on 127.0.0.1 with a CA and certificates made by the test; the CLI runs as a user runs it.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from caxton.client.transport import EngineClient
from caxton.client.tls import TLSOptions
from caxton.engine.config import load
from caxton.errors import InvalidInput, ValidationFailed
from tests.security.tls_certs import CA, Issued
from tests.support.engine import EngineProcess
from tests.support.paths import python_path


class TLSEngine(EngineProcess):
    """An engine started with server.tls (through the CAXTON_TLS_* environment), probed over https."""

    def __init__(self, data_dir: Path, ca: CA, server: Issued, client_ca: CA | None = None) -> None:
        env = {"CAXTON_TLS_CERT_FILE": str(server.cert), "CAXTON_TLS_KEY_FILE": str(server.key)}
        if client_ca is not None:
            env["CAXTON_TLS_CLIENT_CA_FILE"] = str(client_ca.pem)
        super().__init__(data_dir, env=env)
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = ca

    def _wait_ready(self, timeout: float) -> None:  # the log says when it listens (probing needs a cert)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log_text()}")
            if "caxton engine API at" in self.log_text():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"engine not listening after {timeout}s:\n{self.log_text()}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("pki")
    ca, other, clients = CA(root / "ca"), CA(root / "other", "some other CA"), CA(root / "clients", "client CA")
    return {"ca": ca, "other": other, "clients": clients, "server": ca.issue("engine", server=True),
            "client": clients.issue("deployer", server=False), "stranger": other.issue("stranger", server=False)}


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, object]) -> Iterator[TLSEngine]:
    engine = TLSEngine(tmp_path_factory.mktemp("tls") / "data", pki["ca"], pki["server"])  # type: ignore[arg-type]
    engine.start()
    yield engine
    engine.terminate()


@pytest.fixture(scope="module")
def mtls_engine(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, object]) -> Iterator[TLSEngine]:
    engine = TLSEngine(tmp_path_factory.mktemp("mtls") / "data", pki["ca"], pki["server"],  # type: ignore[arg-type]
                       client_ca=pki["clients"])  # type: ignore[arg-type]
    engine.start()
    yield engine
    engine.terminate()


def caxton(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    environment["PYTHONPATH"] = python_path(environment)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "caxton", *args], capture_output=True, text=True,
                          env=environment, timeout=60)


def test_the_engine_serves_https_and_its_banner_says_so(tls_engine: TLSEngine, pki: dict[str, object]) -> None:
    assert f"caxton engine API at https://127.0.0.1:{tls_engine.port}/api/v1" in tls_engine.log_text()
    ca = pki["ca"]
    assert isinstance(ca, CA)
    context = ssl.create_default_context(cafile=str(ca.pem))
    assert httpx.get(tls_engine.url + "/api/v1/health", verify=context).json()["status"] == "healthy"
    with pytest.raises(httpx.RemoteProtocolError):  # plain http to the TLS port gets no HTTP answer
        httpx.get(f"http://127.0.0.1:{tls_engine.port}/api/v1/health")


def test_the_cli_with_the_right_ca_works(tls_engine: TLSEngine, pki: dict[str, object]) -> None:
    ca = pki["ca"]
    assert isinstance(ca, CA)
    by_flag = caxton("--ca-cert", str(ca.pem), "health", "--engine", tls_engine.url)
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = caxton("health", "--engine", tls_engine.url, env={"CAXTON_CA_CERT": str(ca.pem)})
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stdout == by_flag.stdout


@pytest.mark.parametrize("which", ["other", "none"])
def test_the_cli_refuses_a_certificate_its_ca_did_not_sign(tls_engine: TLSEngine, pki: dict[str, object],
                                                           which: str) -> None:
    other = pki["other"]
    assert isinstance(other, CA)
    args = ["--ca-cert", str(other.pem)] if which == "other" else []  # none: the public CA bundle
    result = caxton(*args, "health", "--engine", tls_engine.url)
    assert result.returncode == 1
    assert f"error: certificate verify failed for the engine at {tls_engine.url}" in result.stderr
    assert "hint: pass the CA that signed the engine's certificate with --ca-cert or CAXTON_CA_CERT" in result.stderr
    assert "Traceback" not in result.stderr


def test_mtls_needs_a_client_certificate_the_client_ca_signed(mtls_engine: TLSEngine,
                                                              pki: dict[str, object]) -> None:
    ca, client, stranger = pki["ca"], pki["client"], pki["stranger"]
    assert isinstance(ca, CA) and isinstance(client, Issued) and isinstance(stranger, Issued)
    anonymous = caxton("--ca-cert", str(ca.pem), "health", "--engine", mtls_engine.url)
    assert anonymous.returncode == 1
    assert f"error: TLS handshake with the engine at {mtls_engine.url} failed" in anonymous.stderr
    assert "--client-cert" in anonymous.stderr and "Traceback" not in anonymous.stderr
    foreign = caxton("--ca-cert", str(ca.pem), "--client-cert", str(stranger.cert), "--client-key",
                     str(stranger.key), "health", "--engine", mtls_engine.url)
    assert foreign.returncode == 1
    assert "TLS handshake" in foreign.stderr and "Traceback" not in foreign.stderr
    known = caxton("health", "--engine", mtls_engine.url,
                   env={"CAXTON_CA_CERT": str(ca.pem), "CAXTON_CLIENT_CERT": str(client.cert),
                        "CAXTON_CLIENT_KEY": str(client.key)})
    assert known.returncode == 0, known.stderr


def test_plain_http_to_another_machine_is_refused_before_connecting() -> None:
    # The refusal happens while building the client: nothing is sent (10.255.255.1 is never contacted).
    result = caxton("health", "--engine", "http://10.255.255.1:8080")
    assert result.returncode == 1
    assert "error: refusing plain http:// to 10.255.255.1, which is not this machine" in result.stderr
    assert "--insecure-http (CAXTON_INSECURE_HTTP=1)" in result.stderr
    with pytest.raises(InvalidInput, match="refusing plain http://"):
        EngineClient("http://engine.example.com:8080", tls=TLSOptions())
    # Told so, the client accepts it (it is built, not used: no connection).
    assert TLSOptions(insecure_http=True).verify("http://10.255.255.1:8080") is False
    assert TLSOptions.from_env({"CAXTON_INSECURE_HTTP": "1"}).insecure_http
    for loopback in ("http://127.0.0.1:1", "http://127.0.0.2:1", "http://localhost:1", "http://[::1]:1"):
        assert TLSOptions().verify(loopback) is False


def test_client_tls_files_must_load_and_pair(tmp_path: Path, pki: dict[str, object]) -> None:
    client = pki["client"]
    assert isinstance(client, Issued)
    with pytest.raises(InvalidInput, match=r"cannot load --ca-cert .*missing\.pem"):
        TLSOptions(ca_cert=str(tmp_path / "missing.pem")).verify("https://127.0.0.1:1")
    with pytest.raises(InvalidInput, match="needs both --client-cert and --client-key"):
        TLSOptions(client_cert=str(client.cert)).verify("https://127.0.0.1:1")
    context = TLSOptions(client_cert=str(client.cert), client_key=str(client.key)).verify("https://127.0.0.1:1")
    assert isinstance(context, ssl.SSLContext)


def test_tls_settings_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "caxton.yaml"
    config.write_text("server:\n  tls:\n    cert_file: a.crt\n    key_file: a.key\n", encoding="utf-8")
    tls = load(config, env={}, cwd=tmp_path / "elsewhere").config.server.tls  # relative to the file
    assert (tls.cert_file, tls.key_file, tls.client_ca_file, tls.enabled) == (
        str(tmp_path / "a.crt"), str(tmp_path / "a.key"), None, True)
    from_env = load(config, env={"CAXTON_TLS_CERT_FILE": "b.crt", "CAXTON_TLS_KEY_FILE": "/etc/b.key",
                                 "CAXTON_TLS_CLIENT_CA_FILE": "ca.pem"}, cwd=tmp_path / "elsewhere").config.server.tls
    assert (from_env.cert_file, from_env.key_file, from_env.client_ca_file) == (  # relative to the working dir
        str(tmp_path / "elsewhere" / "b.crt"), "/etc/b.key", str(tmp_path / "elsewhere" / "ca.pem"))
    config.write_text("server:\n  tls:\n    cert_file: a.crt\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="needs both cert_file and key_file"):
        load(config, env={})
    config.write_text("server:\n  tls:\n    client_ca_file: ca.pem\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="client_ca_file"):
        load(config, env={})


def test_an_engine_with_an_unreadable_certificate_exits_1_saying_which(tmp_path: Path,
                                                                       pki: dict[str, object]) -> None:
    server = pki["server"]
    assert isinstance(server, Issued)
    result = caxton("server", "start", "--port", "0", "--data-dir", str(tmp_path / "data"),
                    env={"CAXTON_TLS_CERT_FILE": str(tmp_path / "nope.crt"), "CAXTON_TLS_KEY_FILE": str(server.key)})
    assert result.returncode == 1
    assert "error: cannot load server.tls.cert_file/key_file" in result.stderr
    assert "Traceback" not in result.stderr
