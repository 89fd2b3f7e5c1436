"""schemas/ is generated from the pydantic models: this test fails when they drift."""

from __future__ import annotations

from caxton.cli.schema import build_schemas
from tests.support.paths import REPO_ROOT


def test_committed_schemas_match_the_models() -> None:
    directory = REPO_ROOT / "schemas"
    expected = build_schemas()
    committed = {p.name: p.read_text("utf-8") for p in directory.glob("*.schema.json")}
    stale = sorted(name for name in expected if committed.get(name) != expected[name])
    extra = sorted(set(committed) - set(expected))
    assert not stale and not extra, f"out of date: {stale}, unknown: {extra}; run: caxton schema export schemas"
