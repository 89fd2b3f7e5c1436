"""The light validator: the pre-commit hook's file choice and duplicates, WASM checks without
wasmtime, the toolchain's imports, and the message when the engine extra is missing.

Runs without the engine are subprocesses whose ``sys.modules`` maps the engine's packages to
``None`` (``import wasmtime`` then fails exactly as in a light install).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.git import init_repo
from tests.support.paths import EXAMPLES, REPO_ROOT, free_port
from tests.validation.conftest import GOOD_WAT, VALID_MD, wasm, wasm_agent, write_repo
from tests.validation.test_bad_inputs import CASES

Repo = Callable[[dict[str, str | bytes]], Path]
ENGINE_STACK = ("wasmtime", "onnxruntime", "numpy", "fastapi", "starlette", "uvicorn", "tokenizers", "sqlite_vec",
                "prometheus_client")
HEAVY = tuple(m for m in ENGINE_STACK if m != "wasmtime")


def _md(name: str) -> str:
    return VALID_MD.replace("alpha", name)


def _hook_files(paths: list[str]) -> list[str]:
    """What pre-commit passes to the hook: the files its ``files:`` pattern matches."""
    hook = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text("utf-8"))[0]
    pattern, exclude = re.compile(hook["files"]), re.compile(hook.get("exclude", "^$"))
    return [p for p in paths if pattern.search(p) and not exclude.search(p)]


def _caxton(*args: str, cwd: Path, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m caxton ARGS`` with ``blocked`` packages missing as in an install without them."""
    code = (f"import sys, runpy\nfor name in {blocked!r}: sys.modules[name] = None\n"
            "sys.argv = ['caxton', *sys.argv[1:]]\nrunpy.run_module('caxton', run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _project(root: Path) -> list[str]:
    """A git repository with agents, prose beside them and a module; returns its tracked files."""
    write_repo(root, {
        "agents/a.md": _md("alpha"), "agents/team/b.toml": 'name = "beta"\nversion = "1.0.0"\nsystem_prompt = "hi"\n',
        "agents/README.md": "# Our agents\n", "agents/.drafts/c.md": "not yet\n",
        "agents/w.md": wasm_agent(), "wasm/m.wasm": wasm(GOOD_WAT), "wasm/m.wat": GOOD_WAT,
        "README.md": "# repo\n", "docs/agents/guide.md": "How we write agents.\n", "notes/todo.toml": "x = [\n",
    })
    repo = init_repo(root)
    repo.index.add([str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts])
    return sorted(str(p) for p, _ in repo.index.entries)


def test_the_hook_chooses_the_files_validate_dot_reads(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    given = _hook_files(_project(root))
    assert "docs/agents/guide.md" in given and "notes/todo.toml" in given  # broad pattern: validate chooses
    per_file = _report(_caxton("validate", *given, "-o", "json", cwd=root))
    whole = _report(_caxton("validate", ".", "-o", "json", cwd=root))
    assert per_file["valid"] is whole["valid"] is True
    assert per_file["diagnostics"] == whole["diagnostics"]
    assert per_file["agents"] == whole["agents"]
    assert [a["id"] for a in per_file["agents"]] == ["alpha", "beta", "wasm-one"]


def test_a_non_agent_file_inside_the_agents_dir_is_still_flagged(repo: Repo) -> None:
    root = repo({"agents/notes.txt": "hi", "agents/a.md": _md("alpha"), "docs/x.txt": "prose", "README.md": "# r"})
    report = _report(_caxton("validate", "agents/notes.txt", "docs/x.txt", "README.md", "-o", "json", cwd=root))
    assert [(d["code"], d["file"]) for d in report["diagnostics"]] == [("CX106", "agents/notes.txt")]


@pytest.mark.parametrize("given", ["agents/z.md", "agents/a.md"])
def test_a_duplicate_name_across_files_fails_in_per_file_mode(repo: Repo, run_cli: Any, given: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo({"agents/a.md": _md("DataProcessor"), "agents/m.md": _md("middle"),
                 "agents/z.md": _md("data-processor")})
    monkeypatch.chdir(root)
    for _ in range(2):  # cold, then answered from the validation cache
        result = run_cli("validate", given, "-o", "json")
        report = json.loads(result.out)
        assert result.code == 1
        assert [(d["code"], d["file"], d["line"]) for d in report["diagnostics"]] == [("CX301", "agents/z.md", 2)]
        assert "already defined in agents/a.md" in report["diagnostics"][0]["message"]
    assert run_cli("validate", "agents/m.md").code == 0


def test_a_broken_sibling_does_not_fail_a_given_file(repo: Repo, run_cli: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo({"agents/a.md": _md("alpha"), "agents/b.md": "---\nname: [\n---\n"})
    monkeypatch.chdir(root)
    assert run_cli("validate", "agents/a.md").code == 0
    assert run_cli("validate", ".").code == 1


WASM_CASES = [c for c in CASES if c.code.startswith("CX4")]


@pytest.fixture(scope="module")
def light_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """``validate . -o json`` of every WASM case, run in one process without the engine's stack."""
    roots = {c.id: write_repo(tmp_path_factory.mktemp(c.id), c.files) for c in WASM_CASES}
    code = (f"import contextlib, io, json, os, sys\nfor name in {ENGINE_STACK!r}: sys.modules[name] = None\n"
            "from caxton.cli import main\nreports = {}\n"
            "for case, root in json.loads(sys.argv[1]).items():\n"
            "    os.chdir(root)\n    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out):\n        main.main(['validate', '.', '-o', 'json'])\n"
            "    reports[case] = json.loads(out.getvalue())\n"
            "print(json.dumps(reports))\n")
    done = subprocess.run([sys.executable, "-c", code, json.dumps({k: str(v) for k, v in roots.items()})],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    reports: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return reports


@pytest.mark.parametrize("case", WASM_CASES, ids=[c.id for c in WASM_CASES])
def test_wasm_modules_are_checked_without_wasmtime(case: Any, light_reports: dict[str, dict[str, Any]]) -> None:
    report = light_reports[case.id]
    found = [d for d in report["diagnostics"] if d["code"] == case.code and d["file"] == case.file]
    assert report["valid"] is False and found, report["diagnostics"]
    assert case.line is None or found[0]["line"] == case.line
    assert case.hint is None or case.hint in (found[0]["hint"] or "") + found[0]["message"]


def test_a_good_module_without_wasmtime_is_valid_with_a_note(repo: Repo) -> None:
    root = repo({"agents/a.md": wasm_agent(), "wasm/m.wasm": wasm(GOOD_WAT)})
    light = _report(_caxton("validate", ".", "-o", "json", cwd=root, blocked=ENGINE_STACK))
    full = _report(_caxton("validate", ".", "-o", "json", cwd=root))
    assert light["valid"] is full["valid"] is True
    assert {d["code"] for d in light["diagnostics"]} - {d["code"] for d in full["diagnostics"]} == {"CX416"}
    assert light["agents"] == full["agents"]


def _body(code: str) -> str:
    return GOOD_WAT.replace("(i64.const 0))", f"{code} (i64.const 0))")


@pytest.mark.parametrize(("wat", "feature"), [
    (GOOD_WAT.replace('"memory") 1)', '"memory") 1 2 shared)'), "threads"),
    (GOOD_WAT.replace('(memory (export "memory") 1)', '(memory (export "memory") 1) (memory 1)'), "multi-memory"),
    (GOOD_WAT.replace('(memory (export "memory") 1)', '(memory (export "memory") i64 1)'), "memory64"),
    (GOOD_WAT.replace('(func (export "caxton_alloc")', '(func (param v128))\n  (func (export "caxton_alloc")'),
     "simd"),
    (_body("(drop (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0)))"), "relaxed-simd"),
    (_body("(memory.fill (i32.const 0) (i32.const 0) (i32.const 0))"), "bulk-memory"),
    (_body("(drop (i32.atomic.load (i32.const 0)))").replace('"memory") 1)', '"memory") 1 1 shared)'), "threads"),
    (GOOD_WAT.replace("(i64.const 0))", "(return_call 2 (local.get 0) (local.get 1)))"), "tail-call"),
])
def test_denied_features_are_found_without_wasmtime(repo: Repo, wat: str, feature: str) -> None:
    policy = f"security_policy:\n  denied_features: [{feature}]\n"
    root = repo({"agents/a.md": wasm_agent(extra=policy), "wasm/m.wasm": wasm(wat)})
    for blocked in (ENGINE_STACK, ()):
        report = _report(_caxton("validate", ".", "-o", "json", cwd=root, blocked=blocked))
        denied = [d["message"] for d in report["diagnostics"] if d["code"] == "CX410"]
        assert any(f"'{feature}'" in message for message in denied), (blocked, report["diagnostics"])


def test_the_instruction_reader_agrees_with_wasmtime_on_every_shipped_module() -> None:
    import wasmtime

    from caxton.validation import wasm as wasm_checks
    from caxton.validation import wasmcode

    sources = [*REPO_ROOT.glob("tests/sandbox/modules/*.wat"), *REPO_ROOT.glob("examples/**/*.wat")]
    modules = {p.name: wasm(p.read_text("utf-8")) for p in sources}
    assert len(modules) >= 10
    for name, data in modules.items():
        used = set()
        for feature, switches in wasm_checks._FEATURE_SWITCHES.items():
            try:
                wasmtime.Module.validate(wasm_checks._engine(frozenset(switches)), data)
            except wasmtime.WasmtimeError:
                used.add(feature)
        assert wasmcode.features_used(data) == used, name


def _imported(args: list[str], cwd: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "caxton", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_help_validate_and_plan_import_nothing_of_the_engine_stack(tmp_path: Path) -> None:
    engine = f"http://127.0.0.1:{free_port()}"  # nothing listens: plan fails after loading its code
    help_modules = _imported(["--help"], REPO_ROOT)
    validate_modules = _imported(["validate", str(EXAMPLES), "--no-cache"], REPO_ROOT)
    plan_modules = _imported(["plan", str(EXAMPLES), "--engine", engine], tmp_path)
    assert "typer" in help_modules and "yaml" in validate_modules and "httpx" in plan_modules  # the probe works
    assert not help_modules & set(ENGINE_STACK)
    assert not validate_modules & set(HEAVY)  # wasmtime: only to validate the quickstart's WASM agent
    assert not plan_modules & set(HEAVY)


@pytest.mark.parametrize("command", [["server", "start", "--port", "0"], ["up", "--port", "0"]])
def test_engine_commands_say_the_engine_extra_is_missing(tmp_path: Path, command: list[str]) -> None:
    done = _caxton(*command, cwd=tmp_path, blocked=("fastapi", "onnxruntime"))
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "error: the engine is not installed: pip install 'caxton[engine]'"
    assert "missing: fastapi, onnxruntime" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".caxton").exists()


def test_the_pure_readers_never_crash_on_damaged_modules() -> None:
    import random

    from caxton.rules import wasmbin
    from caxton.validation import wasmcode

    rng = random.Random(11)
    good = wasm(_body("(drop (v128.const i32x4 0 0 0 0)) (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))"))
    for _ in range(2000):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        for read in (wasmbin.read_interface, wasmcode.features_used):
            try:
                read(bytes(damaged))
            except wasmbin.MalformedWasm:
                pass
