"""The explicit list of command groups (no magic discovery).

Each entry is (module, kind): ``command`` modules define one function named
like the module, ``group`` modules define a ``typer.Typer`` named ``app``.
"""

from __future__ import annotations

import importlib

import typer

#: name on the command line -> (module, attribute, is_group)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "init": ("caxton.cli.init", "init", False),
    "validate": ("caxton.cli.validate", "validate", False),
    "schema": ("caxton.cli.schema", "app", True),
    "server": ("caxton.cli.server", "app", True),
    "agents": ("caxton.cli.agents", "app", True),
    "health": ("caxton.cli.health", "health", False),
    "plan": ("caxton.cli.plan", "plan", False),
    "apply": ("caxton.cli.apply", "apply", False),
    "show": ("caxton.cli.show", "show", False),
    "applies": ("caxton.cli.applies", "app", True),
    "lock": ("caxton.cli.lock", "app", True),
    "history": ("caxton.cli.history", "history", False),
    "rollback": ("caxton.cli.history", "rollback", False),
    "reconcile": ("caxton.cli.reconcile", "app", True),
    "up": ("caxton.cli.up", "up", False),
    "memory": ("caxton.cli.memory", "app", True),
    "rollout": ("caxton.cli.rollout", "app", True),
    "token": ("caxton.cli.token", "app", True),
    "backup": ("caxton.cli.backup", "app", True),
    "restore": ("caxton.cli.backup", "restore", False),
    "storage": ("caxton.cli.storage", "app", True),
}

_registered: set[str] = set()


def register(app: typer.Typer, only: str | None = None) -> None:
    """Add the commands to ``app``: just ``only`` when it names one (typer then builds one
    command instead of the whole tree, ~0.1 s per run), else every one not added yet (for
    help, shell completion, and a mistyped command, whose "did you mean" needs every name)."""
    names = [only] if only in COMMANDS else list(COMMANDS)
    for name in names:
        if name in _registered:
            continue
        module_name, attribute, is_group = COMMANDS[name]
        target = getattr(importlib.import_module(module_name), attribute)
        if is_group:
            app.add_typer(target, name=name)
        else:
            app.command(name=name)(target)
        _registered.add(name)
