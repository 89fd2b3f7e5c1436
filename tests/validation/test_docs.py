"""docs/validation.md documents every diagnostic code and every output format."""

from __future__ import annotations

from caxton.validation import codes
from caxton.validation.report import RENDERERS
from tests.support.paths import REPO_ROOT


def test_every_code_and_format_is_documented() -> None:
    text = (REPO_ROOT / "docs" / "validation.md").read_text("utf-8")
    missing = [c.id for c in codes.CATALOGUE if f"| {c.id} | `{c.title}` | {c.severity.value} |" not in text]
    assert not missing, f"document these codes in docs/validation.md: {missing}"
    assert all(f"- `{name}`" in text for name in RENDERERS)
