"""Views of revisions (filled family by family)."""

from __future__ import annotations
