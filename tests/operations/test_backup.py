"""Backups while serving (issue 13, item 1): create under continuous writes, verify, restore elsewhere.

One real engine serves config agents, a WASM agent and memory entities while
a thread keeps deploying, messaging and importing memory; `caxton backup
create` archives it, `caxton restore` puts the archive in a new data dir and a
second engine started there serves exactly what the archive holds. Then the
refusals: truncated, corrupted and newer archives, a held data dir, a
non-empty one (nothing changed in each case).
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.client import memory
from caxton.spec.api import EntityRequest
from caxton.engine import backup
from caxton.errors import BackupInvalid, BackupTooNew, RestoreRefused
from caxton.engine.datadir import DataDirHeld
from tests.conftest import CliResult
from tests.engine.helpers import SCORER_WASM, config_spec, wasm_spec
from tests.support.engine import EngineProcess, running_engine

TOKEN = "backup-token"


def _entities(prefix: str, count: int) -> list[EntityRequest]:
    return [EntityRequest(name=f"{prefix}-{i}", entity_type="fact", observations=[f"{prefix} fact number {i}"])
            for i in range(count)]


class Writer(threading.Thread):
    """Deploys, messages and imports memory against ``engine`` until stopped."""

    def __init__(self, engine: EngineProcess) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.halt = threading.Event()
        self.rounds = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.engine.client() as client:
                while not self.halt.is_set():
                    self.rounds += 1
                    agent_api.deploy(client, config_spec("churner", version=f"1.0.{self.rounds}"))
                    agent_api.send(client, "scorer", "during backup")
                    memory.add(client, _entities(f"busy{self.rounds}", 3))
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        assert self.error is None, self.error


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with running_engine(tmp_path_factory.mktemp("backup"), token=TOKEN) as engine, engine.client() as client:
        agent_api.deploy(client, wasm_spec("scorer"), SCORER_WASM)
        agent_api.deploy(client, config_spec("DataProcessor"))
        agent_api.deploy(client, config_spec("DataProcessor", version="1.1.0"))  # a second revision
        agent_api.deploy(client, config_spec("summariser"))
        memory.add(client, _entities("seed", 5))
        yield engine


@pytest.fixture
def cli(run_cli: Callable[..., CliResult], served: EngineProcess,
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    monkeypatch.setenv("CAXTON_ENGINE_URL", served.url)
    monkeypatch.setenv("CAXTON_API_TOKEN", TOKEN)
    return run_cli


@pytest.fixture(scope="module")
def archive(served: EngineProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .tar.gz taken through the API while a writer keeps changing the engine."""
    from caxton.client import backups

    out = tmp_path_factory.mktemp("archives") / "live.tar.gz"
    writer = Writer(served)
    writer.start()
    try:
        while writer.rounds < 2 and writer.is_alive():  # writes are flowing before the backup starts
            threading.Event().wait(0.02)
        with served.client(timeout=120.0) as client:
            backups.create(client, out)
    finally:
        writer.stop()
    return out


def _archived_store(path: Path, tmp_path: Path) -> dict[str, Any]:
    """Agents, revisions and digests as the archive's engine.db holds them."""
    with tarfile.open(path) as tar:
        tar.extract("engine.db", tmp_path, filter="data")
    conn = sqlite3.connect(tmp_path / "engine.db")
    try:
        agents = {row[0]: (row[1], row[2], json.loads(row[3])) for row in
                  conn.execute("SELECT id, state, revision, traffic FROM agents")}
        revisions = sorted(conn.execute("SELECT agent_id, number, spec_digest FROM revisions").fetchall())
    finally:
        conn.close()
    return {"agents": agents, "revisions": revisions}


def test_backup_under_writes_restores_into_an_engine_serving_the_same_agents_and_memory(
    archive: Path, run_cli: Callable[..., CliResult], tmp_path: Path,
) -> None:
    checked = run_cli("backup", "verify", str(archive), "--output", "json")
    assert checked.code == 0, checked.err
    manifest = json.loads(checked.out)
    assert manifest["ok"] is True and manifest["serial"] >= 5
    assert [m["name"] for m in manifest["members"]] == ["engine.db", "memory.db"]
    expected = _archived_store(archive, tmp_path / "x")
    assert {"scorer", "data-processor", "summariser", "churner"} <= set(expected["agents"])

    data_dir = tmp_path / "data"  # where running_engine(tmp_path) serves from
    restored = run_cli("restore", str(archive), "--data-dir", str(data_dir))
    assert restored.code == 0, restored.err
    assert f"into {data_dir}" in restored.out and "memory entities" in restored.out
    with running_engine(tmp_path, token=TOKEN) as second, second.client() as client:
        assert second.data_dir == data_dir
        agents = {a.id: a for a in agent_api.summaries(client)}
        assert {name: (a.state, a.revision, a.traffic) for name, a in agents.items()} == expected["agents"]
        revisions = sorted((name, r["revision"], r["digest"]) for name in agents
                           for r in client.request("GET", f"/agents/{name}/revisions")["revisions"])
        assert revisions == [tuple(r) for r in expected["revisions"]]
        assert memory.stats(client).entities == manifest["counts"]["memory_entities"]
        assert agent_api.send(client, "scorer", "after restore").reply is not None  # the WASM module came back


def test_backup_create_cli_downloads_a_verified_archive(
    cli: Callable[..., CliResult], served: EngineProcess, tmp_path: Path,
) -> None:
    out = tmp_path / "cli.tar.gz"
    created = cli("backup", "create", "--out", str(out))
    assert created.code == 0, created.err
    with served.client() as client:
        serving = len(agent_api.summaries(client))
    assert created.out.startswith(f"backup {out}: serial ") and f"{serving} agents" in created.out
    assert backup.verify(out)["counts"]["agents"] == serving
    checked = cli("backup", "verify", str(out))
    assert checked.code == 0 and checked.out.startswith(f"{out}: ok (serial ")


def test_backup_routes_need_the_admin_role(served: EngineProcess) -> None:
    import httpx

    assert httpx.post(served.url + "/api/v1/backups", timeout=10).status_code == 401
    assert httpx.get(served.url + "/api/v1/backups/caxton-1Z.tar.gz",
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 404


# --- refusals -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live archive rewritten uncompressed, so bytes of a member can be flipped in place."""
    out = tmp_path_factory.mktemp("plain") / "plain.tar"
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        for info in source:
            target.addfile(info, source.extractfile(info))
    backup.verify(out)
    return out


def test_verify_refuses_a_truncated_archive(archive: Path, tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BackupInvalid, match="truncated"):
        backup.verify(cut)
    result = run_cli("backup", "verify", str(cut))
    assert result.code == 1 and "truncated" in result.err and "hint:" in result.err


def test_verify_refuses_a_flipped_byte(plain: Path, tmp_path: Path) -> None:
    with tarfile.open(plain) as tar:
        offset = tar.getmember("engine.db").offset_data + 3000
    data = bytearray(plain.read_bytes())
    data[offset] ^= 0xFF
    flipped = tmp_path / "flipped.tar"
    flipped.write_bytes(bytes(data))
    with pytest.raises(BackupInvalid, match="engine.db does not match the manifest"):
        backup.verify(flipped)


def _with_manifest(plain: Path, out: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    with tarfile.open(plain) as source, tarfile.open(out, "w") as target:
        for info in source:
            handle = source.extractfile(info)
            assert handle is not None
            if info.name == "manifest.json":
                manifest = json.loads(handle.read())
                change(manifest)
                body = json.dumps(manifest).encode()
                info.size = len(body)
                handle = io.BytesIO(body)
            target.addfile(info, handle)
    return out


def test_verify_and_restore_refuse_an_archive_of_a_newer_schema(plain: Path, tmp_path: Path) -> None:
    newer = _with_manifest(plain, tmp_path / "newer.tar",
                           lambda m: m["databases"]["store"]["migrations"].append("0099_from_the_future"))
    with pytest.raises(BackupTooNew, match="0099_from_the_future"):
        backup.verify(newer)
    with pytest.raises(BackupTooNew):
        backup.restore(newer, tmp_path / "target")
    assert not (tmp_path / "target").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["newer.tar"]  # no staging directory left behind
    future = _with_manifest(plain, tmp_path / "future.tar", lambda m: m.update(format_version=99))
    with pytest.raises(BackupTooNew, match="backup format 99"):
        backup.verify(future)


def _fingerprint(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "engine.lock"}


def test_restore_refuses_the_data_dir_a_serving_engine_holds(
    archive: Path, served: EngineProcess, run_cli: Callable[..., CliResult],
) -> None:
    before = sorted(p.name for p in served.data_dir.iterdir())
    with pytest.raises(DataDirHeld, match="held by pid"):
        backup.restore(archive, served.data_dir, force=True)
    result = run_cli("restore", str(archive), "--data-dir", str(served.data_dir), "--force")
    assert result.code == 1 and "held by" in result.err
    assert sorted(p.name for p in served.data_dir.iterdir()) == before
    with served.client() as client:
        assert status_api.ready(client)


def test_restore_refuses_a_non_empty_data_dir_unless_forced(
    archive: Path, tmp_path: Path, run_cli: Callable[..., CliResult],
) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "engine.db").write_bytes(b"an older store")
    (target / "notes.txt").write_text("keep me")
    before = _fingerprint(target)
    with pytest.raises(RestoreRefused, match="not empty"):
        backup.restore(archive, target)
    refused = run_cli("restore", str(archive), "--data-dir", str(target), "--output", "json")
    assert refused.code == 1 and "--force" in refused.err
    assert _fingerprint(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data"]

    forced = run_cli("restore", str(archive), "--data-dir", str(target), "--force", "--output", "json")
    assert forced.code == 0, forced.err
    result = json.loads(forced.out)
    aside = Path(result["moved_aside"])
    assert _fingerprint(aside) == before  # the old files are kept, moved aside
    assert sorted(_fingerprint(target)) == ["engine.db", "memory.db"]
    assert backup.verify(archive)["serial"] == result["serial"]


# --- storage verify -----------------------------------------------------------------------
def test_storage_verify_passes_on_a_serving_engine(served: EngineProcess, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("storage", "verify", "--data-dir", str(served.data_dir), "--output", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["ok"] is True and report["problems"] == [] and report["memory_checked"] is True
    assert report["counts"]["agents"] >= 4


def test_storage_verify_reports_a_corrupted_blob_a_missing_one_and_orphans(
    archive: Path, tmp_path: Path, run_cli: Callable[..., CliResult],
) -> None:
    data_dir = tmp_path / "data"
    backup.restore(archive, data_dir)
    conn = sqlite3.connect(data_dir / "engine.db", isolation_level=None)
    try:
        spec_sha = conn.execute("SELECT spec_sha256 FROM revisions WHERE agent_id = 'summariser'").fetchone()[0]
        conn.execute("UPDATE blobs SET data = CAST('{}' AS BLOB) WHERE sha256 = ?", (spec_sha,))
        module_sha = conn.execute("SELECT module_sha256 FROM revisions WHERE agent_id = 'scorer'").fetchone()[0]
        conn.execute("DELETE FROM blobs WHERE sha256 = ?", (module_sha,))
        conn.execute("INSERT INTO blobs VALUES (?, 'module', 3, CAST('abc' AS BLOB))",
                     (hashlib.sha256(b"abc").hexdigest(),))
    finally:
        conn.close()
    result = run_cli("storage", "verify", "--data-dir", str(data_dir))
    assert result.code == 1 and "problems in" in result.err
    assert f"spec blob {spec_sha[:12]}...: its bytes do not match" in result.out
    assert f"revision 1 of scorer: module blob {module_sha[:12]}... is missing" in result.out
    assert f"orphan blob: {hashlib.sha256(b'abc').hexdigest()}" in result.out


# --- kill -9 mid-backup ---------------------------------------------------------------------
_BACKUP_IN_A_PROCESS = """
import sys
from pathlib import Path
from caxton.engine import backup
from caxton.engine.state.store import Store
backup.create(Store.open(Path(sys.argv[1])), None, Path(sys.argv[2]))
"""


def test_a_backup_killed_mid_write_leaves_no_archive_verify_accepts(tmp_path: Path) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from caxton.engine.state.records import Source
    from caxton.engine.state.store import Store

    data_dir = tmp_path / "data"
    store = Store.open(data_dir)
    with store.transaction() as tx:  # 24 MB that do not compress: the tar takes a while to write
        for _ in range(3):
            tx.put_blob(random.randbytes(8_000_000), "module")
        tx.event("filled", Source(actor="test"))
    store.close()
    out = tmp_path / "backups" / "killed.tar.gz"
    out.parent.mkdir()
    process = subprocess.Popen([sys.executable, "-c", _BACKUP_IN_A_PROCESS, str(data_dir), str(out)],
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while not partial and process.poll() is None and time.monotonic() < deadline:
        partial = [p for p in out.parent.glob(".killed.tar.gz.*.tmp") if p.stat().st_size > 0]
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert partial, "the backup finished before it could be killed mid-write"
    assert not out.exists()
    with pytest.raises(BackupInvalid):
        backup.verify(partial[0])
