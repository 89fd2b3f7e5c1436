"""``caxton validate`` and ``caxton schema export`` as a user runs them: formats, exit codes, snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from tests.support.paths import EXAMPLES
from tests.validation.conftest import VALID_MD, write_repo

BAD = Path(__file__).parent / "fixtures" / "bad"


@pytest.fixture
def in_bad(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)


@pytest.mark.parametrize("output", ["text", "json", "github"])
def test_bad_example_output_snapshot(output: str, run_cli: Any, in_bad: None, snapshot: SnapshotAssertion) -> None:
    result = run_cli("validate", "--output", output)
    assert result.code == 1
    assert result.err.startswith("invalid: 1 agent(s)")
    if output == "json":  # sources carry the git commit of this checkout: compared elsewhere
        report = json.loads(result.out)
        assert report.pop("sources")[0]["source"] == "."
        assert report == snapshot
    else:
        assert result.out == snapshot


def test_sarif_output_is_sarif_2_1_0(run_cli: Any, in_bad: None) -> None:
    result = run_cli("validate", "agents", "-o", "sarif")
    assert result.code == 1
    sarif = json.loads(result.out)
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "caxton"
    assert run["results"]
    for result_item in run["results"]:
        assert rules[result_item["ruleIndex"]]["id"] == result_item["ruleId"]
        assert result_item["level"] in {"error", "warning", "note"}
        location = result_item["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"].startswith("agents/")
        assert location["region"]["startLine"] >= 1


def test_strict_turns_warnings_into_errors(run_cli: Any, in_bad: None) -> None:
    lenient = run_cli("validate", "agents/legacy.toml")
    strict = run_cli("validate", "agents/legacy.toml", "--strict")
    assert lenient.code == 0 and "warning CX210" in lenient.out
    assert strict.code == 1 and "error CX210" in strict.out


def test_quickstart_is_valid(run_cli: Any) -> None:
    result = run_cli("validate", str(EXAMPLES), "--strict")
    assert result.code == 0, result.out
    assert result.out == ""
    assert result.err.startswith("valid: 4 agent(s)")


def test_json_report_lists_agents_and_sources(run_cli: Any) -> None:
    result = run_cli("validate", str(EXAMPLES), "-o", "json")
    report = json.loads(result.out)
    assert report["version"] == 1 and report["valid"] is True
    assert [a["id"] for a in report["agents"]] == ["data-processor", "scorer", "summarizer", "word-count"]
    assert report["sources"][0]["digest"].startswith("sha256:")


def test_pre_commit_style_file_list(run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_repo(tmp_path, {"agents/a.md": VALID_MD, "agents/b.md": "---\nname: b\n---\n"})
    monkeypatch.chdir(tmp_path)
    assert run_cli("validate", "agents/a.md").code == 0
    result = run_cli("validate", "agents/a.md", "agents/b.md")
    assert result.code == 1
    assert "agents/b.md:1:1: error CX201: missing required field 'version'" in result.out


def test_no_path_and_no_agents_dir_is_a_clear_error(run_cli: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate")
    assert result.code == 1
    assert result.err.startswith("error: no caxton.yaml or agents/ directory here")
    assert "Traceback" not in result.err


def test_missing_path_and_bad_ref_exit_1_without_traceback(run_cli: Any, tmp_path: Path) -> None:
    missing = run_cli("validate", str(tmp_path / "nope"))
    bad_ref = run_cli("validate", str(tmp_path), "--ref", "HEAD~1")
    for result in (missing, bad_ref):
        assert result.code == 1 and result.err.startswith("error:") and "Traceback" not in result.err


def test_schema_export_writes_and_checks(run_cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    assert run_cli("schema", "export", str(target), "--check").code == 1
    assert run_cli("schema", "export", str(target)).code == 0
    assert sorted(p.name for p in target.iterdir()) == [
        "agent.schema.json", "config-agent.schema.json", "project.schema.json", "wasm-agent.schema.json"]
    assert run_cli("schema", "export", str(target), "--check").code == 0


def test_config_only_validate_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    from tests.support.paths import REPO_ROOT

    code = (
        "import sys\n"
        "from caxton.cli import main\n"
        f"rc = main.main(['validate', {str(EXAMPLES / 'agents' / 'data-processor.md')!r}])\n"
        "heavy = {'wasmtime', 'git', 'onnxruntime', 'fastapi', 'httpx', 'uvicorn', 'numpy', 'tokenizers'}\n"
        "print(rc, sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert done.stdout.strip() == "0 []"
