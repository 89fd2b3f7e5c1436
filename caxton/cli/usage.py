"""How the command line presents itself: readable metavars, usage errors, help.

Typer (0.29, see pyproject.toml's bound) shows Python types in help
(``<list[Path]>``, ``<str>``, ``{name}``); :func:`readable` gives every
parameter of the built command tree a metavar a person reads (PATH, NAME,
TEXT, URL...) in one pass, so command modules declare none. The usage-error
classes are looked up through typer's own namespace (typer 0.29 vendors click
as ``typer._click``), never by importing ``click``.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import typer
import typer.core

#: typer's click exceptions module (``typer._click.exceptions``, or ``click.exceptions`` for a typer
#: that uses the standalone click): found through an exception typer exports, not a hard-coded import.
_exceptions = sys.modules[typer.BadParameter.__module__]
ClickException: type[Exception] = _exceptions.ClickException
UsageError: type[Exception] = _exceptions.UsageError
NoSuchOption: Any = _exceptions.NoSuchOption
NoArgsIsHelpError: type[Exception] = _exceptions.NoArgsIsHelpError

#: Parameter name -> metavar, where the name says more than the type (TEXT, PATH...).
NAMED: dict[str, str] = {
    "paths": "PATH",
    "directory": "DIR",
    "target": "PLAN_FILE|DIR",
    "engine": "URL",
    "token": "TOKEN",
    "ref": "REV",
    "branch": "BRANCH",
    "source": "SOURCE",
    "path": "DIR",
    "data_dir": "DIR",
    "config": "FILE",
    "out": "FILE",
    "interval": "DURATION",
    "poll_interval": "DURATION",
    "max_backoff": "DURATION",
    "timeout": "SECONDS",
    "port": "PORT",
    "host": "HOST",
    "env": "NAME",
}
_TYPES: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER"}


class _ReadableArgument(typer.core.TyperArgument):
    """An argument shown by its metavar alone: ``NAME``, ``[PATH]...`` (no ``<str>``, no ``{name}``)."""

    def _shown(self) -> str:
        name = self.metavar or (self.name or "").upper()
        shown = name if self.required else f"[{name}]"
        return shown + ("..." if self.nargs != 1 else "")

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        return [self._shown()]

    def get_help_record(self, ctx: Any) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return None if record is None else (self._shown(), record[1])


def metavar(param: Any) -> str | None:
    """The readable metavar of one parameter (None for a flag): NAMED, else by its name
    (arguments) or its type (options): TEXT, INTEGER, NUMBER, PATH, [a|b] for a choice."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.name in NAMED:
        return NAMED[param.name]
    descriptor = getattr(param, "type_descriptor", None)
    if isinstance(param, typer.core.TyperArgument) or descriptor is None:
        return (param.name or "VALUE").upper()
    if descriptor.is_choice and descriptor.choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in descriptor.choices) + "]"
    if descriptor.is_path:
        return "PATH"
    annotation = descriptor.annotation
    item = (getattr(annotation, "__args__", None) or (annotation,))[0] if descriptor.is_list else annotation
    return _TYPES.get(item, "VALUE")


def readable(command: Any) -> Any:
    """Give ``command``'s parameters, and its subcommands', readable metavars; return ``command``."""
    for param in command.params:
        if param.metavar is None:
            param.metavar = metavar(param)
        if type(param) is typer.core.TyperArgument:
            param.__class__ = _ReadableArgument
    for sub in getattr(command, "commands", {}).values():
        readable(sub)
    return command


def show_usage_error(error: Any, out: TextIO, root: Any, args: list[str]) -> None:
    """Like click: the usage line, "Try 'caxton CMD -h' for help.", then "Error: ..." with suggestions.

    ``root`` and ``args`` find the command when the error carries no context (an option without its value)."""
    ctx = error.ctx or _context(root, args)
    if ctx is not None:
        out.write(f"{ctx.get_usage()}\nTry '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n\n")
    out.write(f"Error: {_message(error)}\n")


def _context(root: Any, args: list[str]) -> Any:
    """The context of the deepest command that ``args`` name, parsed leniently (for its usage line)."""
    if root is None:
        return None
    ctx = root.make_context("caxton", [], resilient_parsing=True)
    for arg in args:
        sub = getattr(ctx.command, "commands", {}).get(arg)
        if sub is not None:
            ctx = sub.make_context(arg, [], parent=ctx, resilient_parsing=True)
    return ctx


def _message(error: Any) -> str:
    if isinstance(error, NoSuchOption):
        possibilities = list(error.possibilities or ())  # best first (difflib)
        if possibilities:
            return f"No such option: {error.option_name}. Did you mean {' or '.join(possibilities)}?"
        return str(error.message)
    # typer 0.29 checks values with pydantic, whose messages may start with "Value error, "
    return str(error.format_message()).replace(": Value error, ", ": ", 1)


def help_text(error: Any) -> str:
    """The help of the command a NoArgsIsHelpError was raised for (a group without its subcommand)."""
    return str(error.ctx.get_help())
