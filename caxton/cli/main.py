"""Entry point of ``caxton``: builds the Typer app and maps errors to exit codes.

This is the one place where exceptions become exit codes:
0 success / no changes, 1 error or invalid input, 2 changes present
(``plan --detailed-exitcode``), 3 apply finished but rolled back,
4 apply still in progress at ``--timeout`` (e.g. a rollout paused for lack of
traffic; the engine carries on), 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

# pydantic scans every installed distribution for plugins on first use (~20 ms of each
# command); the CLI uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import click
import typer

from caxton import __version__
from caxton.errors import ApplyTimeout, CaxtonError, Interrupted, RolledBack

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_ROLLED_BACK = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="caxton",
    help="Declarative GitOps manager for AI agents: validate, plan, apply, reconcile.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"caxton {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Declarative GitOps manager for AI agents: validate, plan, apply, reconcile."""


def _register(args: Sequence[str]) -> None:
    from caxton.cli import commands

    commands.register(app, only=args[0] if args else None)


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, RolledBack):
        return EXIT_ROLLED_BACK
    if isinstance(error, ApplyTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, (Interrupted, KeyboardInterrupt, click.exceptions.Abort)):
        return EXIT_INTERRUPTED
    return EXIT_ERROR


def _report(error: CaxtonError) -> None:
    sys.stderr.write(f"error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"  hint: {error.hint}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _register(args)
    try:
        result = app(args=args, prog_name="caxton", standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as usage:
        usage.show(file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, click.exceptions.Abort):
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except CaxtonError as error:
        _report(error)
        return exit_code_for(error)
    except Exception as error:  # noqa: BLE001 - the last line of defence: no bare tracebacks
        sys.stderr.write(f"error: internal error: {type(error).__name__}: {error}\n")
        sys.stderr.write("  hint: this is a bug in caxton; set CAXTON_DEBUG=1 for the traceback\n")
        if os.environ.get("CAXTON_DEBUG"):
            traceback.print_exc()
        return EXIT_ERROR
    return int(result) if isinstance(result, int) else EXIT_OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
