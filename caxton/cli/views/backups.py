"""Views of backups (filled family by family)."""

from __future__ import annotations
