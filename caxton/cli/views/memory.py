"""Views of memory (filled family by family)."""

from __future__ import annotations
