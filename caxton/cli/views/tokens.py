"""Views of tokens (filled family by family)."""

from __future__ import annotations
