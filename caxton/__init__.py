"""Caxton: a declarative GitOps manager for AI agents.

Two stacks that meet only over HTTP (``docs/architecture.md``; the import-linter
contracts in pyproject.toml enforce it): the toolchain (``spec``, ``validation``,
``desired``, ``planning``, ``client``, ``reconcile``, ``cli``) and the runtime
(``spec``, ``metrics``, ``sandbox`` and ``memory``, ``engine``).
"""

from __future__ import annotations

__version__ = "0.1.0"
