"""Views of applies (filled family by family)."""

from __future__ import annotations
