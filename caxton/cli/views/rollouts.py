"""Views of rollouts (filled family by family)."""

from __future__ import annotations
