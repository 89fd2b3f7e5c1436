"""Check that a ``caxton ...`` command line written in a shipped file (a CI workflow, a systemd unit, a Dockerfile,
a Kubernetes manifest) parses with the real CLI: every subcommand, option and value (choices, types) as the
command would see them, without running it."""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from typing import Any

import typer.main

from caxton.cli import main as cli_main
from caxton.cli import usage

#: shlex's punctuation (``punctuation_chars=True``): a word of these ends a command (redirection, pipe, list).
_PUNCTUATION = "();<>|&"
#: Words after which a command starts (besides a word of punctuation).
_COMMAND_STARTS = {"then", "do", "else", "exec", "!", "time"}


def parse(argv: Sequence[str]) -> list[str]:
    """Parse ``caxton ARGV...`` down to its leaf command; return the command path (e.g. ``["server", "start"]``).

    Raises the usage errors of typer's click (unknown command or option, bad value) the CLI turns into exit 64.
    """
    cli_main._register([])
    command: Any = usage.readable(typer.main.get_command(cli_main.app))
    path: list[str] = []
    context = command.make_context("caxton", list(argv))
    while hasattr(command, "resolve_command"):  # a group: its subcommand and that one's arguments are left over
        rest = [*getattr(context, "_protected_args", ()), *context.args]
        assert rest, f"`caxton {' '.join(argv)}` names no command of {' '.join(['caxton', *path])}"
        name, found, rest = command.resolve_command(context, rest)
        assert found is not None and name is not None
        path.append(name)
        command = found
        context = command.make_context(name, rest, parent=context)
    return path


def commands_in_shell(script: str) -> Iterator[list[str]]:
    """The argument lists of every ``caxton`` command in a shell script (``caxton`` as a command word)."""
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        for start, word in enumerate(words):
            if word == "caxton" and (start == 0 or words[start - 1] in _COMMAND_STARTS
                                    or _is_operator(words[start - 1])):
                yield list(_until_operator(words[start + 1:]))


def _until_operator(words: Sequence[str]) -> Iterator[str]:
    for index, word in enumerate(words):
        redirects = index + 1 < len(words) and words[index + 1][:1] in ("<", ">") and word.isdigit()  # 2>&1
        if redirects or _is_operator(word):
            return
        yield word


def _is_operator(word: str) -> bool:
    return bool(word) and all(char in _PUNCTUATION for char in word)
