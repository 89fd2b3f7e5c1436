"""Allow ``python -m caxton``."""

from __future__ import annotations

from caxton.cli.main import run

run()
