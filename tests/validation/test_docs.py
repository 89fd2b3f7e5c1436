"""docs/validation.md documents every diagnostic code and every output format."""

from __future__ import annotations

from typing import Any

from caxton.validation import codes
from caxton.validation.report import RENDERERS
from tests.support.paths import REPO_ROOT


def test_every_code_and_format_is_documented() -> None:
    text = (REPO_ROOT / "docs" / "validation.md").read_text("utf-8")
    missing = [c.id for c in codes.CATALOGUE if f"| {c.id} | `{c.title}` | {c.severity.value} |" not in text]
    assert not missing, f"document these codes in docs/validation.md: {missing}"
    assert all(f"- `{name}`" in text for name in RENDERERS)


def test_the_mcp_example_of_docs_tools_md_is_valid_and_its_typo_is_caught(repo: Any, validate_json: Any) -> None:
    text = (REPO_ROOT / "docs" / "tools.md").read_text("utf-8")
    at = text.index("name: librarian")
    example = text[text.rindex("```yaml", 0, at) + len("```yaml\n"):text.index("```", at)]
    code, report = validate_json(str(repo({"agents/librarian.md": example})))
    assert (code, report["valid"], report["diagnostics"]) == (0, True, [])
    code, report = validate_json(str(repo({"agents/librarian.md": example.replace("wiki.read,", "wiki.raed,")})))
    assert code == 1 and [(d["code"], d["hint"]) for d in report["diagnostics"]] == [("CX324", "did you mean 'read'?")]
