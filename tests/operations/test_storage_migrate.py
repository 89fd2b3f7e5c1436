"""`caxton storage migrate` (issue 14, item 4): an embedded engine's whole state and memory moved into PostgreSQL.

A real engine serves the quickstart (applied with the real CLI), a canary rollout of its ``scorer`` promotes
under load, a config agent holds a conversation and the memory holds entities; the engine stops, the data
directory is migrated into a fresh PostgreSQL database, and an engine on that database (state and memory)
serves the same agents at the same revisions, the same events and rollout, continues the conversation with
its history and finds the same memory. Then the refusals: a held data directory, a non-empty target (and
``--replace``), a source of another schema version, and a row PostgreSQL rejects midway (the target stays
empty: one transaction).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from syrupy.assertion import SnapshotAssertion

from caxton.client import agents as agent_api
from caxton.client import memory, rollouts, status
from caxton.engine.state import pgmigrate
from caxton.engine.state.migrations import MIGRATIONS
from caxton.spec.api import EntityRequest
from caxton.spec.secrets import redact_url
from tests.conftest import CliResult
from tests.engine.helpers import config_spec
from tests.rollouts.test_apply_e2e import CANARY, http_load
from tests.support.engine import EngineProcess, no_memory, running_engine
from tests.support.git import DesiredRepo

PASSWORD = "migrate-secret-pw"
FACTS = {"ada": "Ada drinks green tea with honey", "oslo": "Oslo is the capital of Norway",
         "rust": "Rust programs are compiled ahead of time"}


def with_password(url: str) -> str:
    """``url`` with a password (the tests' server trusts its unix socket: any password is accepted)."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.netloc.split("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}:{PASSWORD}@{host}", parts.path, parts.query, parts.fragment))


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return sorted(str(row[0]) for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))


def search(client: Any, query: str) -> list[tuple[int, str, float]]:
    return [(hit.id, hit.name, round(hit.similarity, 4)) for hit in memory.search(client, query, k=3).results]


def served(client: Any) -> dict[str, tuple[str, int | None]]:
    return {a.name: (a.state, a.revision) for a in agent_api.summaries(client)}


def test_an_embedded_engine_moves_into_postgresql_and_serves_the_same(
        run_cli: Callable[..., CliResult], tmp_path: Path, pg_url: str) -> None:
    repo = DesiredRepo(tmp_path / "repo")
    repo.edit("agents/scorer.md", "security_policy:", CANARY + "security_policy:")
    with running_engine(tmp_path / "src") as source, source.client() as client:
        assert run_cli("apply", str(repo.agents), "--engine", source.url, "--auto-approve").code == 0
        with http_load(source):
            time.sleep(0.3)
            repo.edit("agents/scorer.md", 'version: "1.0.0"', 'version: "1.1.0"')
            canary = run_cli("apply", str(repo.agents), "--engine", source.url, "--auto-approve")
        assert canary.code == 0 and "rollout succeeded" in canary.out, canary.out + canary.err
        for text in ("first-question", "second-question"):
            agent_api.send(client, "data-processor", text, conversation_id="c1")
        memory.add(client, [EntityRequest(name=name, entity_type="fact", observations=[text])
                            for name, text in FACTS.items()])
        before = {"agents": served(client), "events": status.events(client, limit=1000).events,
                  "rollout": rollouts.status(client, "scorer")[0],
                  "search": {q: search(client, q) for q in ("what does Ada drink?", "capital of Norway")}}
        assert before["agents"]["scorer"] == ("Running", 2)

    url = with_password(pg_url)
    moved = run_cli("storage", "migrate", "--from", str(source.data_dir), "--to", url, "--output", "json")
    assert moved.code == 0, moved.err
    assert PASSWORD not in moved.out + moved.err
    report = json.loads(moved.out)
    assert report["ok"] and report["memory"] and report["replaced"] is False and ":***@" in report["target"]
    copied = {f"{t['database']}.{t['table']}": t for t in report["tables"]}
    assert all(t["ok"] and t["rows"] == t["target_rows"] and t["digest"] == t["target_digest"]
               for t in copied.values())
    for table in ("agents", "revisions", "blobs", "events", "meta", "applies", "rollouts", "rollout_pins",
                  "conversation_turns", "agent_logs", "apply_lock"):
        assert f"store.{table}" in copied
    assert copied["store.rollouts"]["rows"] >= 1 and copied["store.conversation_turns"]["rows"] >= 2
    source_db = sqlite3.connect(f"file:{source.data_dir / 'engine.db'}?mode=ro", uri=True)
    try:
        for table in ("events", "conversation_turns", "agent_logs", "blobs"):
            assert copied[f"store.{table}"]["rows"] == source_db.execute(
                f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
    finally:
        source_db.close()
    assert copied["memory.memory_entities"]["rows"] >= len(FACTS)  # and what the agents remembered
    assert report["serial"] == max(e.serial for e in before["events"])

    config = tmp_path / "pg.yaml"
    config.write_text(yaml.safe_dump({"memory": {"backend": "postgres"}}))
    with running_engine(tmp_path / "dst", config=config, env={"CAXTON_STORE_URL": pg_url}) as target, \
            target.client() as client:
        assert served(client) == before["agents"]
        events = [e for e in status.events(client, limit=1000).events if e.id <= before["events"][-1].id]
        assert events == before["events"]
        assert rollouts.status(client, "scorer")[0] == before["rollout"]
        assert {q: search(client, q) for q in before["search"]} == before["search"]
        reply = agent_api.send(client, "data-processor", "third-question", conversation_id="c1").model_dump_json()
        assert "first-question" in reply and "second-question" in reply
        agent_api.deploy(client, config_spec("newcomer"))  # the serial and the ids continue after the copied ones
        later = status.events(client, after=before["events"][-1].id, limit=1000).events
        assert later and min(e.serial for e in later) > report["serial"]
        alive = run_cli("storage", "migrate", "--from", str(source.data_dir), "--to", url, "--replace")
        assert alive.code == 1 and "engines are running on" in alive.err and PASSWORD not in alive.err
        refused = run_cli("backup", "create", "--engine", target.url, "--out", str(tmp_path / "b.tar.gz"))
        assert refused.code == 1 and "pg_dump" in refused.err and not (tmp_path / "b.tar.gz").exists()
    checked = run_cli("storage", "verify", "--store-url", url, "--output", "json")
    assert checked.code == 0, checked.out + checked.err
    verified = json.loads(checked.out)
    assert verified["ok"] and verified["backend"] == "postgres" and verified["memory_checked"]
    assert verified["counts"]["revisions"] == copied["store.revisions"]["rows"] + 1  # the newcomer's
    assert verified["counts"]["memory_entities"] == copied["memory.memory_entities"]["rows"]
    assert PASSWORD not in checked.out + checked.err


@pytest.fixture
def small_source(tmp_path: Path) -> Path:
    """A stopped engine's data directory: three agents, a conversation, no memory."""
    with running_engine(tmp_path / "small", config=no_memory(tmp_path / "small")) as engine, \
            engine.client() as client:
        for name in ("alpha", "beta", "gamma"):
            agent_api.deploy(client, config_spec(name))
        agent_api.send(client, "alpha", "hello", conversation_id="c1")
    return engine.data_dir


def test_a_non_empty_target_is_refused_unless_replace(
        run_cli: Callable[..., CliResult], small_source: Path, pg_url: str) -> None:
    first = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url)
    assert first.code == 0, first.err
    before = tables(pg_url)
    again = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url)
    assert again.code == 1 and "already holds Caxton's tables" in again.err and "--replace" in again.err
    with psycopg.connect(pg_url) as conn:  # a change on the target that --replace must undo
        conn.execute("INSERT INTO agent_logs (agent_id, at, at_unix, level, message) VALUES ('x', '', 0, 'info', 'y')")
        conn.execute("CREATE TABLE unrelated (id INT)")
    replaced = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url, "--replace",
                       "--output", "json")
    assert replaced.code == 0, replaced.err
    report = json.loads(replaced.out)
    assert report["replaced"] is True and all(t["ok"] for t in report["tables"])
    assert tables(pg_url) == sorted([*before, "unrelated"])  # Caxton's tables rebuilt, the other one left alone
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM agent_logs WHERE agent_id = 'x'").fetchone() == (0,)


def test_a_held_data_directory_and_another_schema_version_are_refused(
        run_cli: Callable[..., CliResult], small_source: Path, tmp_path: Path, pg_url: str) -> None:
    engine = EngineProcess(small_source, config=no_memory(tmp_path / "again")).start()
    try:
        held = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url)
    finally:
        engine.terminate()
    assert held.code == 1 and "is held by" in held.err
    conn = sqlite3.connect(small_source / "engine.db", isolation_level=None)
    conn.execute("DELETE FROM migrations WHERE name = '0006_engines'")  # as an older caxton left it
    older = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url)
    assert older.code == 1 and (f"has schema version {len(MIGRATIONS) - 1}; this caxton creates schema version "
                                f"{len(MIGRATIONS)}") in older.err
    assert "start this caxton's engine on the data directory once" in older.err
    conn.execute("INSERT INTO migrations (name, applied_at) VALUES ('0006_engines', '')")
    conn.execute("INSERT INTO migrations (name, applied_at) VALUES ('9999_future', '')")
    conn.close()
    newer = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url)
    assert newer.code == 1 and "9999_future" in newer.err and f"schema version {len(MIGRATIONS)}" in newer.err
    assert tables(pg_url) == []


def test_a_row_postgresql_rejects_midway_leaves_the_target_empty(
        run_cli: Callable[..., CliResult], small_source: Path, pg_url: str) -> None:
    conn = sqlite3.connect(small_source / "engine.db", isolation_level=None)  # foreign keys off: SQLite takes it
    conn.execute("INSERT INTO revisions (agent_id, number, version, spec_sha256, spec_digest, created_at) "
                 "VALUES ('ghost', 1, '1.0.0', 'no-such-blob', 'd', '')")
    conn.close()
    failed = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url)
    assert failed.code == 1
    assert "rejected a row of table revisions" in failed.err and "nothing was written" in failed.err
    assert tables(pg_url) == []


def test_the_report(run_cli: Callable[..., CliResult], small_source: Path, pg_url: str,
                    snapshot: SnapshotAssertion) -> None:
    moved = run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url)
    assert moved.code == 0, moved.err
    text = moved.out.replace(str(small_source), "DATA_DIR").replace(redact_url(pg_url), "URL")
    text = re.sub(r"digest [0-9a-f]{16}", "digest <digest>", text)
    text = re.sub(r"serial \d+", "serial <n>", text)
    text = text.replace(f"schema version {len(MIGRATIONS)},", "schema version <this caxton's>,")
    text = re.sub(r"(store\.(?:events|agent_logs) +)(\d+)",  # how many: the log flusher's timing
                  lambda m: m.group(1)[:-1] + " " * len(m.group(2)) + "n", text)
    assert text == snapshot


def test_the_digest_is_the_same_in_any_order_and_changes_with_any_value() -> None:
    rows = [(1, "a", b"\x00\x01", 0.5, None), (2, "b", b"", 1.0, 3)]
    assert pgmigrate.content_digest(rows) == pgmigrate.content_digest(reversed(rows))
    assert pgmigrate.content_digest(rows)[0] == 2
    for changed in ((1, "a", b"\x00\x02", 0.5, None), (1, "a", b"\x00\x01", 0.25, None), (1, "a", b"\x00\x01", 0.5, 0)):
        assert pgmigrate.content_digest([changed, rows[1]]) != pgmigrate.content_digest(rows)


def test_storage_verify_on_postgresql_reports_a_bad_blob_a_stale_serial_an_unknown_migration_and_orphans(
        run_cli: Callable[..., CliResult], small_source: Path, pg_url: str) -> None:
    assert run_cli("storage", "migrate", "--from", str(small_source), "--to", pg_url).code == 0
    sound = run_cli("storage", "verify", "--store-url", pg_url)
    assert sound.code == 0 and ": ok (3 agents, 3 revisions, 3 blobs, 0 orphan blobs, no memory database)" in sound.out
    with psycopg.connect(pg_url, autocommit=True) as conn:
        spec = conn.execute("SELECT spec_sha256 FROM revisions WHERE agent_id = 'beta'").fetchone()[0]
        conn.execute("UPDATE blobs SET data = '\\x7b7d' WHERE sha256 = %s", (spec,))
        conn.execute("INSERT INTO blobs VALUES (%s, 'module', 3, 'abc')", (hashlib.sha256(b"abc").hexdigest(),))
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'serial'")
        conn.execute("INSERT INTO migrations (name, applied_at) VALUES ('9999_future', '')")
    damaged = run_cli("storage", "verify", "--store-url", pg_url)
    assert damaged.code == 1 and "4 problems in" in damaged.err and "pg_dump" in damaged.err
    assert f"spec blob {spec[:12]}...: its bytes do not match its sha256 or size" in damaged.out
    assert "the state serial 1 is behind the newest event's" in damaged.out
    assert "migration 9999_future is not one this caxton knows" in damaged.out
    assert f"meta.schema_version is {len(MIGRATIONS)} but {len(MIGRATIONS) + 1} migrations are recorded" in damaged.out
    assert f"orphan blob: {hashlib.sha256(b'abc').hexdigest()}" in damaged.out


def test_storage_verify_needs_a_store(run_cli: Callable[..., CliResult], pg_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAXTON_DATA_DIR", raising=False)
    monkeypatch.delenv("CAXTON_STORE_URL", raising=False)
    nothing = run_cli("storage", "verify")
    assert nothing.code == 1 and "--store-url" in nothing.err
    empty = run_cli("storage", "verify", "--store-url", pg_url)
    assert empty.code == 1 and "no Caxton store" in empty.err and "storage migrate" in empty.err
