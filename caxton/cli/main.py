"""Entry point of ``caxton``: builds the Typer app and maps errors to exit codes.

This is the one place where exceptions become exit codes:

- 0: success / no changes; ``caxton`` alone, and a command group without its
  subcommand (``caxton agents``), print their help to stdout and exit 0.
- 1: error or invalid input (``error: ...`` and a hint on stderr).
- 2: changes present (``plan --detailed-exitcode``).
- 3: apply finished but a rollout was rolled back.
- 4: apply still in progress at ``--timeout`` (e.g. a rollout paused for lack of
  traffic; the engine carries on).
- 64: usage error (unknown command or option, missing or bad argument): the
  usage line, ``Try 'caxton CMD -h' for help.`` and ``Error: ...`` with "did
  you mean" suggestions on stderr. 64 is ``EX_USAGE`` of sysexits.h; click's 2
  would read as "changes present".
- 130: interrupted (Ctrl-C anywhere, also at apply's confirmation prompt):
  ``interrupted`` on stderr, no traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

# pydantic scans every installed distribution for plugins on first use (~20 ms of each
# command); the CLI uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer
import typer.main

from caxton import __version__
from caxton.cli import usage
from caxton.cli.common import (
    CACertOption,
    ClientCertOption,
    ClientKeyOption,
    InsecureHttpOption,
    set_engine_default,
    set_tls_environment,
)
from caxton.errors import ApplyTimeout, CaxtonError, Interrupted, RolledBack

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_ROLLED_BACK = 3
EXIT_TIMEOUT = 4
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="caxton",
    help="Declarative GitOps manager for AI agents: validate, plan, apply, reconcile.",
    no_args_is_help=True,
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
    ca_cert: CACertOption = None,
    client_cert: ClientCertOption = None,
    client_key: ClientKeyOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Declarative GitOps manager for AI agents: validate, plan, apply, reconcile."""
    set_tls_environment(ca_cert, client_cert, client_key, insecure_http)
    set_engine_default()


def _register(args: Sequence[str]) -> None:
    from caxton.cli import commands

    commands.register(app, only=args[0] if args else None)


def exit_code_for(error: CaxtonError) -> int:
    if isinstance(error, RolledBack):
        return EXIT_ROLLED_BACK
    if isinstance(error, ApplyTimeout):
        return EXIT_TIMEOUT
    return EXIT_ERROR


def _report(error: CaxtonError) -> None:
    sys.stderr.write(f"error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"  hint: {error.hint}\n")


def _interrupted(*, at_prompt: bool = False) -> int:
    if at_prompt and sys.stdout.isatty():
        sys.stdout.write("\n")  # end the prompt's line
        sys.stdout.flush()
    sys.stderr.write("interrupted\n")
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises)."""
    engine_url = os.environ.get("CAXTON_ENGINE_URL")  # caxton.yaml's defaults may set it for this command only
    try:
        return _main(argv)
    finally:
        if engine_url is None:
            os.environ.pop("CAXTON_ENGINE_URL", None)
        else:
            os.environ["CAXTON_ENGINE_URL"] = engine_url


def _main(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = None
    try:
        _register(args)
        command = usage.readable(typer.main.get_command(app))
        # typer turns Ctrl-C into exit code 130 (a typer.Exit it returns when not standalone)
        result = command.main(args=args, prog_name="caxton", standalone_mode=False)
    except SystemExit as done:  # --install-completion, --show-completion and shell completion call sys.exit
        return done.code if isinstance(done.code, int) else EXIT_OK if done.code is None else EXIT_ERROR
    except typer.Abort:  # Ctrl-C (or end of input) at a prompt
        return _interrupted(at_prompt=True)
    except KeyboardInterrupt:
        return _interrupted()
    except Interrupted as stopped:  # Ctrl-C where a command has more to say (e.g. the apply id to follow)
        sys.stderr.write(stopped.message + "\n")
        return EXIT_INTERRUPTED
    except CaxtonError as error:
        _report(error)
        return exit_code_for(error)
    except usage.NoArgsIsHelpError as asked:  # `caxton`, `caxton agents`: the help, as -h prints it
        sys.stdout.write(usage.help_text(asked) + "\n")
        return EXIT_OK
    except usage.UsageError as wrong:
        usage.show_usage_error(wrong, sys.stderr, command, args)
        return EXIT_USAGE
    except usage.ClickException as error:
        sys.stderr.write(f"error: {error.format_message()}\n")  # type: ignore[attr-defined]
        return EXIT_ERROR
    except Exception as error:  # noqa: BLE001 - the last line of defence: no bare tracebacks
        sys.stderr.write(f"error: internal error: {type(error).__name__}: {error}\n")
        sys.stderr.write("  hint: this is a bug in caxton; set CAXTON_DEBUG=1 for the traceback\n")
        if os.environ.get("CAXTON_DEBUG"):
            traceback.print_exc()
        return EXIT_ERROR
    if result == EXIT_INTERRUPTED:
        return _interrupted()
    return int(result) if isinstance(result, int) else EXIT_OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
