"""The schedule's list of long test files (tests/support/schedule.py) names files that exist, once each."""

from __future__ import annotations

from tests.support.paths import REPO_ROOT
from tests.support.schedule import LONGEST_FILES


def test_every_listed_long_file_exists_once() -> None:
    missing = [path for path in LONGEST_FILES if not (REPO_ROOT / path).is_file()]
    assert not missing, f"tests/support/schedule.py names files that are gone (renamed?): {missing}"
    assert len(set(LONGEST_FILES)) == len(LONGEST_FILES)
