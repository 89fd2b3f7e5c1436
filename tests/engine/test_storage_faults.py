"""A real full and a real read-only data volume: 507 storage_full / 503 storage_read_only, health degraded.

The engine runs in its own mount namespace (``unshare --mount``, the tests
run as root) with its data directory on a small tmpfs. The test fills that
tmpfs through ``/proc/PID/root`` (a real ENOSPC for SQLite and the artifact
files) and bind-mounts the backups folder read-only with ``nsenter`` (a
real EROFS: Linux refuses to remount the whole volume read-only while the
engine holds its databases open for writing), then frees / unmounts it and
the engine writes again.
"""

from __future__ import annotations

import base64
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from caxton.engine.storage_health import StorageFaults
from caxton.errors import StorageFull
from tests.rollouts import agents
from tests.support.engine import EngineProcess

V1 = "/api/v1"


class TmpfsEngine(EngineProcess):
    """The engine in its own mount namespace with its data directory on a 16 MiB tmpfs."""

    SCRIPT = 'mount -t tmpfs -o size=16m tmpfs "$0" && exec "$@"'

    def command(self) -> list[str]:
        return ["unshare", "--mount", "sh", "-c", self.SCRIPT, str(self.data_dir), *super().command()]

    def inside(self, path: Path) -> Path:
        """``path`` as the engine sees it (its mount namespace)."""
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/root") / path.relative_to("/")

    def mount_read_only(self, path: Path) -> None:
        """Bind-mount ``path`` (a folder of the data directory) read-only in the engine's namespace."""
        self.inside(path).mkdir(parents=True, exist_ok=True)
        self._nsenter("sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"', str(path))

    def unmount(self, path: Path) -> None:
        self._nsenter("umount", str(path))

    def _nsenter(self, *command: str) -> None:
        assert self.proc is not None
        subprocess.run(["nsenter", "--target", str(self.proc.pid), "--mount", *command], check=True,
                       capture_output=True, timeout=30)


def tmpfs_engine(tmp_path: Path, config_text: str) -> TmpfsEngine:
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path}"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (unshare --mount needs CAP_SYS_ADMIN): {probe.stderr}")
    config = tmp_path / "caxton.yaml"
    config.write_text(config_text)
    return TmpfsEngine(tmp_path / "data", config=config)


@pytest.fixture
def small_tmpfs_engine(tmp_path: Path) -> Iterator[TmpfsEngine]:
    engine = tmpfs_engine(tmp_path, "memory:\n  enabled: false\n")
    engine.start(timeout=60)
    try:
        yield engine
    finally:
        if engine.running:
            engine.terminate()


def deploy(engine: EngineProcess, version: int) -> httpx.Response:
    body = {"spec": agents.spec("echo", version), "module": base64.b64encode(agents.module(version)).decode()}
    return httpx.put(engine.url + V1 + "/agents/echo", json=body, timeout=30)


def storage(engine: EngineProcess) -> tuple[str, dict[str, Any]]:
    health = httpx.get(engine.url + V1 + "/health/detailed", timeout=10).json()
    return health["status"], health["storage"]


def fill(path: Path) -> None:
    """Write ``path`` until the volume is full (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_data_volume_answers_507_and_a_read_only_one_503(small_tmpfs_engine: TmpfsEngine) -> None:
    assert deploy(small_tmpfs_engine, 1).status_code == 200
    assert storage(small_tmpfs_engine) == ("healthy", {"status": "healthy", "faults": 0})

    filler = small_tmpfs_engine.inside(small_tmpfs_engine.data_dir / "filler")
    fill(filler)
    full = deploy(small_tmpfs_engine, 2)
    assert full.status_code == 507, full.text
    error = full.json()["error"]
    assert error["code"] == "storage_full" and "full" in error["message"] and "free space" in error["hint"]
    status, health = storage(small_tmpfs_engine)
    assert status == "degraded" and health["code"] == "storage_full" and health["faults"] == 1
    reply = httpx.post(small_tmpfs_engine.url + V1 + "/agents/echo/messages", json={"content": {"n": 1}}, timeout=10)
    assert reply.status_code == 200 and reply.json()["reply"] == {"v": 1}  # messages go on

    filler.unlink()
    assert deploy(small_tmpfs_engine, 2).status_code == 200, "the engine writes again once space is freed"

    backups = small_tmpfs_engine.data_dir / "backups"
    small_tmpfs_engine.mount_read_only(backups)
    try:
        read_only = httpx.post(small_tmpfs_engine.url + V1 + "/backups", timeout=60)
        assert read_only.status_code == 503, read_only.text
        error = read_only.json()["error"]
        assert error["code"] == "storage_read_only" and "read-only" in error["message"]
        assert str(backups) in error["message"] and "read-write" in error["hint"]
        status, health = storage(small_tmpfs_engine)
        assert status == "degraded" and health["code"] == "storage_read_only" and health["faults"] == 2
        assert httpx.get(small_tmpfs_engine.url + V1 + "/agents", timeout=10).status_code == 200  # reads go on
    finally:
        small_tmpfs_engine.unmount(backups)
    written = httpx.post(small_tmpfs_engine.url + V1 + "/backups", timeout=60)
    assert written.status_code == 200, "the engine writes again once the folder is writable"


def test_a_storage_fault_degrades_health_until_it_is_old() -> None:
    now = [100.0]
    faults = StorageFaults(clock=lambda: now[0], hold=60.0)
    faults.note(StorageFull("the engine's disk is full", hint="free space"))
    now[0] += 59.0
    assert faults.health() == {"status": "degraded", "faults": 1, "code": "storage_full",
                               "message": "the engine's disk is full", "hint": "free space", "seconds_ago": 59.0}
    now[0] += 2.0
    assert faults.health() == {"status": "healthy", "faults": 1}


def test_a_scheduled_backup_to_a_read_only_folder_degrades_health(tmp_path: Path) -> None:
    engine = tmpfs_engine(tmp_path, "memory:\n  enabled: false\nbackups:\n  interval: 1s\n  directory: scheduled\n")
    engine.start(timeout=60)
    try:
        engine.mount_read_only(engine.data_dir / "scheduled")
        deadline = time.monotonic() + 30
        while storage(engine)[1]["status"] == "healthy" and time.monotonic() < deadline:
            time.sleep(0.1)
        status, health = storage(engine)
        assert status == "degraded" and health["code"] == "storage_read_only", engine.log_text()
        assert "read-only" in health["message"] and "scheduled" in health["message"]
        assert "scheduled backup to " in engine.log_text() and "read-only" in engine.log_text()
    finally:
        engine.terminate()
