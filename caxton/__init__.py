"""Caxton: a declarative GitOps manager for AI agents.

The package is layered (see DESIGN.md and the import-linter contracts in
pyproject.toml): ``spec`` at the bottom, then ``validation``, ``desired``,
``planning``, the runtime parts (``sandbox``, ``memory``), the ``engine`` and
its ``client``, and the ``cli`` on top.
"""

from __future__ import annotations

__version__ = "0.1.0"
