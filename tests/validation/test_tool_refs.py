"""Tool references across files: a config agent may list a WASM tool of the desired state (a WASM agent with a
``tool:`` section), in a full run, from the validation cache, and with explicit files (pre-commit)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.validation.conftest import GOOD_WAT, wasm, wasm_agent

USER = '---\nname: editor\nversion: "1.0.0"\nsystem_prompt: hi\ntools:\n  - calculator\n  - {tool}\n---\n'
TOOL = ("tool:\n  description: counts words\n  parameters:\n    type: object\n"
        "    properties:\n      text: {type: string}\n")


def problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Errors and warnings (not the module's "no sha256 pin" note)."""
    return [d for d in report["diagnostics"] if d["severity"] != "info"]


def project(repo: Callable[[dict[str, str | bytes]], Path], listed: str) -> Path:
    return repo({"agents/editor.md": USER.format(tool=listed), "agents/wc.md": wasm_agent(extra=TOOL),
                 "wasm/m.wasm": wasm(GOOD_WAT)})


@pytest.mark.parametrize("listed", ["wasm-one", "WasmOne"])
def test_a_wasm_tool_of_the_desired_state_may_be_listed(repo: Callable[[dict[str, str | bytes]], Path],
                                                        validate_json: Any, monkeypatch: pytest.MonkeyPatch,
                                                        listed: str) -> None:
    monkeypatch.chdir(project(repo, listed))
    for run in ("fresh", "from the cache"):
        code, report = validate_json(".")
        assert (code, problems(report)) == (0, []), run
    code, report = validate_json("agents/editor.md")  # pre-commit: only the user's file is given
    assert (code, problems(report)) == (0, [])


def test_a_mistyped_wasm_tool_is_pointed_at_fresh_and_from_the_cache(
    repo: Callable[[dict[str, str | bytes]], Path], validate_json: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(project(repo, "wasm-on"))
    seen = []
    for args in ((".",), (".",), ("agents/editor.md",)):
        code, report = validate_json(*args)
        [found] = problems(report)
        seen.append((code, found["code"], found["file"], found["line"], found["column"], found["hint"]))
    assert seen == [(1, "CX302", "agents/editor.md", 7, 5, "did you mean 'wasm-one'?")] * 3


def test_removing_the_tool_section_breaks_its_users(repo: Callable[[dict[str, str | bytes]], Path],
                                                    validate_json: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(repo, "wasm-one")
    monkeypatch.chdir(root)
    assert validate_json(".")[0] == 0
    (root / "agents" / "wc.md").write_text(wasm_agent())
    code, report = validate_json(".")
    assert code == 1
    assert [(d["code"], d["file"]) for d in problems(report)] == [("CX302", "agents/editor.md")]
    assert "is a WASM agent (agents/wc.md) but not a tool" in problems(report)[0]["message"]


def test_a_file_that_fails_its_schema_still_gets_its_tools_checked(
    repo: Callable[[dict[str, str | bytes]], Path], validate_json: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(repo({"agents/editor.md": USER.format(tool="wasm-on").replace("tools:", "toolz: 1\ntools:")}))
    for run in ("fresh", "from the cache"):
        code, report = validate_json(".")
        assert code == 1
        assert {(d["code"], d["line"]) for d in problems(report)} == {("CX202", 5), ("CX302", 8)}, run


def test_a_tool_slower_than_the_callers_timeout_is_a_warning(
    repo: Callable[[dict[str, str | bytes]], Path], validate_json: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = TOOL + "resource_limits:\n  max_execution_time_ms: 20000\n"
    monkeypatch.chdir(repo({"agents/editor.md": USER.format(tool="wasm-one"), "agents/wc.md": wasm_agent(extra=slow),
                            "wasm/m.wasm": wasm(GOOD_WAT)}))
    code, report = validate_json(".")
    [found] = problems(report)
    assert (code, found["code"], found["severity"], found["line"]) == (0, "CX322", "warning", 7)
    assert "may run 20s (its max_execution_time_ms), longer than this agent's tool_call_timeout (10s)" in found["message"]
    patient = USER.format(tool="wasm-one").replace("tools:", "resource_limits:\n  tool_call_timeout: 30s\ntools:")
    (Path("agents") / "editor.md").write_text(patient)
    assert problems(validate_json(".")[1]) == []
