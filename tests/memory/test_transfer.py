"""Export/import in JSON lines, merge strategies, and a kill -9 in the middle of an import."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from caxton import errors
from caxton.memory import embeddings, models, service
from caxton.spec.project import EngineMemorySettings
from tests.memory.conftest import OpenMemory

E = models.EntityInput


def _export(memory: service.MemoryService) -> list[str]:
    out = io.StringIO()
    memory.export_jsonl(out)
    return out.getvalue().splitlines()


def _filled(memory: service.MemoryService) -> list[str]:
    alice, bob = memory.create_entities(
        [
            E("alice", "person", ("likes hiking",)),
            E("bob", "person", ("plays jazz",), "agent", "bot"),
        ]
    )
    memory.relate(alice.id, bob.id, "knows", 0.4)
    return _export(memory)


def test_export_then_import_reproduces_entities_and_relations(
    memory: service.MemoryService, tmp_path: Path, embedder: embeddings.Embedder
) -> None:
    lines = _filled(memory)
    assert json.loads(lines[0])["format"] == "caxton-memory" and len(lines) == 4
    other = service.MemoryService(tmp_path / "other.db", EngineMemorySettings(), embedder=embedder)
    report = other.import_jsonl(lines, "error")
    assert report.to_dict() == {
        "created": 2,
        "updated": 0,
        "skipped": 0,
        "relations": 1,
        "errors": [],
    }
    assert _export(other)[1:] != [] and other.relations()[0].strength == 0.4
    assert other.search("jazz", k=1)[0].entity.owner == "bot"


def test_merge_strategies_on_conflict(memory: service.MemoryService) -> None:
    lines = _filled(memory)
    with pytest.raises(errors.Conflict, match="already exist"):
        memory.import_jsonl(lines, "error")
    assert memory.import_jsonl(lines, "skip").skipped == 2
    changed = [line.replace("likes hiking", "likes climbing") for line in lines]
    assert memory.import_jsonl(changed, "update").updated == 2
    assert memory.lookup("alice")[0].observations == ("likes climbing",)
    with pytest.raises(errors.InvalidInput, match="unknown merge"):
        memory.import_jsonl(lines, "overwrite")


def test_bad_lines_are_refused_before_anything_is_stored(
    memory: service.MemoryService,
) -> None:
    good = json.dumps({"kind": "entity", "name": "a", "entity_type": "t", "observations": ["x"]})
    with pytest.raises(errors.InvalidInput, match="line 2: not JSON"):
        memory.import_jsonl([good, "{oops"])
    too_big = json.dumps({"name": "b", "entity_type": "t", "observations": ["x" * 20_000]})
    with pytest.raises(errors.PayloadTooLarge):
        memory.import_jsonl([good, too_big])
    with pytest.raises(errors.InvalidInput, match="not a caxton-memory v1 export"):
        memory.import_jsonl([json.dumps({"kind": "header", "format": "other"}), good])
    assert memory.store.count() == 0


def test_import_over_the_entity_limit_stores_nothing(open_memory: OpenMemory) -> None:
    memory = open_memory(EngineMemorySettings(max_entities=2))
    lines = [json.dumps({"name": f"e{i}", "entity_type": "t"}) for i in range(3)]
    with pytest.raises(errors.LimitExceeded):
        memory.import_jsonl(lines)
    assert memory.store.count() == 0


_WORKER = """
import sys
from pathlib import Path
from caxton.memory import service
from caxton.spec.project import EngineMemorySettings
memory = service.MemoryService(Path(sys.argv[1]), EngineMemorySettings(max_batch_size=10))
with open(sys.argv[2]) as lines:
    memory.import_jsonl(lines, "update")
"""


def _count(path: Path) -> int:
    """Entities committed so far, read through a separate read-only connection."""
    import pysqlite3

    if not path.exists():
        return 0
    conn = pysqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM entities").fetchone()[0])
    except pysqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def test_kill_9_during_bulk_import_leaves_a_consistent_store(tmp_path: Path, embedder: embeddings.Embedder) -> None:
    source = tmp_path / "import.jsonl"
    source.write_text(
        "\n".join(
            json.dumps(
                {
                    "name": f"fact-{i}",
                    "entity_type": "fact",
                    "observations": [f"fact number {i}"],
                }
            )
            for i in range(300)
        )
    )
    db = tmp_path / "m.db"
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(db), str(source)])
    try:
        deadline = time.monotonic() + 120
        while (committed := _count(db)) < 30 and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait()
    assert worker.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    assert committed >= 30
    memory = service.MemoryService(db, EngineMemorySettings(max_batch_size=10), embedder=embedder)
    entity_ids = {row[0] for row in memory.store.conn.execute("SELECT id FROM entities")}
    vector_ids = {row[0] for row in memory.store.conn.execute("SELECT rowid FROM entity_vectors")}
    assert entity_ids == vector_ids and len(entity_ids) % 10 == 0 and len(entity_ids) < 300
    assert memory.store.integrity() == "ok"
    report = memory.import_jsonl(source.read_text().splitlines(), "skip")
    assert report.skipped == len(entity_ids) and memory.store.count() == memory.store.vector_count() == 300
