"""The validation cache and worker processes: same answers as a fresh run, invalidated by any change."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caxton.desired import cache as caches
from caxton.desired import loader
from caxton.validation import pipeline
from tests.support.git import commit, init_repo
from tests.support.paths import EXAMPLES, REPO_ROOT
from tests.validation.conftest import GOOD_WAT, VALID_MD, wasm, wasm_agent
from tests.validation.test_bad_inputs import CASES, Case

Repo = Callable[[dict[str, str | bytes]], Path]
CACHED = loader.Options(cache=True)


@pytest.fixture(autouse=True)
def own_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("CAXTON_CACHE_DIR", str(directory))
    monkeypatch.delenv("CAXTON_NO_CACHE", raising=False)
    return directory


def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, validating a file afresh fails the test: everything must come from the cache."""

    def refuse(item: pipeline.AgentFile, read_module: Any) -> pipeline.FileResult:
        raise AssertionError(f"{item.path} was validated again instead of read from the cache")

    monkeypatch.setattr(pipeline, "validate_file", refuse)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_cached_run_reports_exactly_what_a_fresh_run_does(
    case: Case, repo: Repo, validate_json: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = repo({**case.files, "agents/zz-good.md": VALID_MD.replace("alpha", "zz-good")})
    monkeypatch.chdir(root)
    fresh = validate_json(".", "--no-cache")
    first = validate_json(".")
    second = validate_json(".")
    assert fresh == first == second
    assert fresh[0] == 1


def test_warm_run_validates_nothing_again_and_keeps_duplicate_positions(
    repo: Repo, validate_json: Any, monkeypatch: pytest.MonkeyPatch, own_cache_dir: Path,
) -> None:
    root = repo({
        "agents/a.md": VALID_MD,
        "agents/b.md": "---\n# the same agent again\nname: Alpha\nversion: \"1.0.0\"\nsystem_prompt: x\n---\n",
        "agents/w.md": wasm_agent(),
        "wasm/m.wasm": wasm(GOOD_WAT),
    })
    monkeypatch.chdir(root)
    cold = validate_json(".")
    assert list(own_cache_dir.glob("validate/*.json"))
    no_validation(monkeypatch)
    warm = validate_json(".")
    assert warm == cold
    duplicate = [d for d in warm[1]["diagnostics"] if d["code"] == "CX301"]
    assert duplicate and duplicate[0]["file"] == "agents/b.md" and duplicate[0]["line"] == 3


def test_an_edited_file_is_validated_again(repo: Repo, validate_json: Any) -> None:
    root = repo({"agents/a.md": VALID_MD})
    assert validate_json(str(root))[0] == 0
    (root / "agents" / "a.md").write_text(VALID_MD.replace('"1.0.0"', '"one"'), "utf-8")
    code, result = validate_json(str(root))
    assert code == 1
    assert [d["code"] for d in result["diagnostics"]] == ["CX206"]


def test_a_changed_module_is_checked_again(repo: Repo, validate_json: Any) -> None:
    good = wasm(GOOD_WAT)
    root = repo({"agents/w.md": wasm_agent(), "wasm/m.wasm": good})
    assert validate_json(str(root))[0] == 0
    (root / "wasm" / "m.wasm").write_bytes(b"garbage, not wasm")
    code, result = validate_json(str(root))
    assert code == 1
    assert any(d["code"].startswith("CX4") for d in result["diagnostics"]), result["diagnostics"]
    (root / "wasm" / "m.wasm").unlink()
    code, result = validate_json(str(root))
    assert [d["code"] for d in result["diagnostics"]] == ["CX401"]
    (root / "wasm" / "m.wasm").write_bytes(good)
    assert validate_json(str(root))[0] == 0


def test_a_pinned_module_digest_follows_the_module(repo: Repo) -> None:
    good = wasm(GOOD_WAT)
    root = repo({"agents/w.md": wasm_agent(), "wasm/m.wasm": good})
    before = loader.load(root, options=CACHED).by_id()["wasm-one"]
    other = wasm(GOOD_WAT.replace("1024", "2048"))
    (root / "wasm" / "m.wasm").write_bytes(other)
    after = loader.load(root, options=CACHED).by_id()["wasm-one"]
    assert before.module_bytes == good and after.module_bytes == other
    assert before.digest != after.digest


def test_cached_state_equals_fresh_state(tmp_path: Path) -> None:
    fresh = loader.load(EXAMPLES)
    cold = loader.load(EXAMPLES, options=CACHED)
    warm = loader.load(EXAMPLES, options=CACHED)
    for state in (cold, warm):
        assert state.digest == fresh.digest
        assert state.diagnostics == fresh.diagnostics
        assert [(a.spec, a.file, a.module_bytes, a.module_sha256, a.digest) for a in state.agents] == [
            (a.spec, a.file, a.module_bytes, a.module_sha256, a.digest) for a in fresh.agents]


def test_a_corrupt_cache_file_is_ignored_and_rewritten(
    repo: Repo, validate_json: Any, own_cache_dir: Path,
) -> None:
    root = repo({"agents/a.md": VALID_MD})
    expected = validate_json(str(root))
    [stored] = own_cache_dir.glob("validate/*.json")
    good = stored.read_bytes()
    header, _, body = good.partition(b"\n")
    damaged = [b"{not json", b"", b"[]", b'{"format": 99}\n{}', header + b"\n" + body.replace(b"alpha", b"omega"),
               header + b"\n" + body[:-5]]
    for garbage in damaged:
        stored.write_bytes(garbage)
        assert validate_json(str(root)) == expected
        assert stored.read_bytes() == good  # rewritten whole


def test_an_entry_of_another_shape_is_validated_afresh(
    repo: Repo, validate_json: Any, own_cache_dir: Path,
) -> None:
    root = repo({"agents/a.md": VALID_MD})
    expected = validate_json(str(root))
    [stored] = own_cache_dir.glob("validate/*.json")
    key = next(iter(json.loads(stored.read_bytes().partition(b"\n")[2])))
    body = json.dumps({key: {"agent": 3}}).encode()
    header = json.dumps({"format": caches.FORMAT, "sha256": hashlib.sha256(body).hexdigest()}).encode()
    stored.write_bytes(header + b"\n" + body)
    assert validate_json(str(root)) == expected


def test_no_cache_flag_and_environment_write_nothing(
    repo: Repo, validate_json: Any, own_cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = repo({"agents/a.md": VALID_MD})
    assert validate_json(str(root), "--no-cache")[0] == 0
    monkeypatch.setenv("CAXTON_NO_CACHE", "1")
    assert validate_json(str(root))[0] == 0
    assert not own_cache_dir.exists()


def test_an_unwritable_cache_directory_changes_nothing(
    repo: Repo, validate_json: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", "utf-8")
    monkeypatch.setenv("CAXTON_CACHE_DIR", str(blocker / "cache"))
    root = repo({"agents/a.md": VALID_MD})
    assert validate_json(str(root))[0] == 0


def test_git_revisions_share_the_cache_safely(tmp_path: Path) -> None:
    root = tmp_path / "g"
    (root / "agents").mkdir(parents=True)
    (root / "agents" / "a.md").write_text(VALID_MD, "utf-8")
    repository = init_repo(root)
    commit(repository, "one", ["agents/a.md"])
    (root / "agents" / "a.md").write_text(VALID_MD.replace('"1.0.0"', '"2.0.0"'), "utf-8")
    commit(repository, "two", ["agents/a.md"])
    for _ in range(2):
        assert loader.load(root, ref="HEAD~1", options=CACHED).agents[0].spec.version == "1.0.0"
        assert loader.load(root, ref="HEAD", options=CACHED).agents[0].spec.version == "2.0.0"


WORKERS_SCRIPT = """
import json, sys
from pathlib import Path
from caxton.desired import loader, workers
from caxton.validation import pipeline
workers.MIN_FILES_PER_WORKER = 2
root = Path(sys.argv[1])
calls = []
real = pipeline.validate_file
pipeline.validate_file = lambda *args: calls.append(1) or real(*args)
assert workers._single_threaded()
parallel = loader.load(root, options=loader.Options(jobs=2))
assert not calls, "the files were validated in this process, not in workers"
states = [loader.load(root, options=loader.Options(jobs=1)), parallel]
print(json.dumps([[d.model_dump(mode="json") for d in s.diagnostics] for s in states]))
print(json.dumps([[(a.file, a.digest, a.spec.model_dump(mode="json")) for a in s.agents] for s in states]))
print(json.dumps([s.digest for s in states]))
"""


def test_worker_processes_give_the_serial_answer(repo: Repo) -> None:
    files: dict[str, str | bytes] = {f"agents/a{i}.md": VALID_MD.replace("alpha", f"agent-{i}") for i in range(20)}
    files.update({f"agents/bad{i}.md": CASES[i].files.get("agents/a.md", "") for i in range(0, 30, 3)})
    files.update({"agents/dup.md": VALID_MD.replace("alpha", "Agent_3"), "agents/w.md": wasm_agent(),
                  "wasm/m.wasm": wasm(GOOD_WAT)})
    root = repo(files)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", WORKERS_SCRIPT, str(root)], capture_output=True, text=True,
                          env=env, check=True, timeout=120)
    for line in done.stdout.splitlines():
        serial, parallel = json.loads(line)
        assert serial == parallel
    diagnostics = json.loads(done.stdout.splitlines()[0])[0]
    assert any(d["code"] == "CX301" for d in diagnostics)


def test_a_dead_worker_means_validating_in_process(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from caxton.desired import workers

    class Dead:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise BrokenProcessPool("a worker died")

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", Dead)
    monkeypatch.setattr(workers, "_single_threaded", lambda: True)
    monkeypatch.setattr(workers, "MIN_FILES_PER_WORKER", 1)
    root = repo({f"agents/a{i}.md": VALID_MD.replace("alpha", f"agent-{i}") for i in range(4)})
    state = loader.load(root, options=loader.Options(jobs=2))
    assert [a.id for a in state.agents] == [f"agent-{i}" for i in range(4)]
