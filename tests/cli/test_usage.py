"""Usage errors, help and metavars: what a person sees when the command line is wrong or asked for help."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import typer.main
from syrupy.assertion import SnapshotAssertion

from caxton.cli import commands, main, usage
from tests.cli.conftest import child_env
from tests.conftest import CliResult

Run = Callable[..., CliResult]

#: Each usage error the CLI can meet, run in-process; stderr is snapshotted.
USAGE_ERRORS = {
    "unknown-root-option": ["--bogus"],
    "unknown-command": ["valdate", "agents"],
    "unknown-subcommand": ["agents", "stauts", "data-processor"],
    "missing-argument": ["agents", "status"],
    "unknown-option": ["validate", "--strct"],
    "unknown-option-of-subcommand": ["agents", "list", "--outptu", "json"],
    "bad-choice": ["validate", "-o", "yaml"],
    "bad-number": ["apply", "--timeout", "soon"],
    "extra-argument": ["plan", "agents", "more"],
    "option-without-value": ["plan", "--engine"],
}
#: Groups that print their help without a subcommand (reconcile runs a pass instead).
GROUPS = [name for name, (_, _, is_group) in commands.COMMANDS.items() if is_group and name != "reconcile"]
TYPE_METAVAR = re.compile(r"<[a-z][^>]*>|\{[a-z_]+\}")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m caxton ARGS`` in a fresh process (only the invoked command is registered, as for a user)."""
    return subprocess.run([sys.executable, "-m", "caxton", *args], capture_output=True, text=True, env=child_env(),
                          timeout=60, check=False)


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_a_usage_error_prints_the_usage_and_exits_64(run_cli: Run, snapshot: SnapshotAssertion, case: str) -> None:
    result = run_cli(*USAGE_ERRORS[case])
    assert (result.code, result.out) == (main.EXIT_USAGE, "")
    assert result.err.startswith("Usage: caxton")
    assert result.err == snapshot


@pytest.mark.parametrize(("args", "suggestion"), [
    (["valdate", "agents"], "Did you mean 'validate'?"),
    (["agents", "stauts", "x"], "Did you mean 'status'?"),
    (["rollout", "promte", "x"], "Did you mean 'promote'?"),
    (["validate", "--strct"], "Did you mean --strict?"),
    (["plan", "--detailed-exitcod"], "Did you mean --detailed-exitcode?"),
    (["reconcile", "--watc"], "Did you mean --watch or --path?"),
])
def test_a_fresh_process_suggests_the_closest_command_or_option(args: list[str], suggestion: str) -> None:
    done = cli(*args)
    assert done.returncode == main.EXIT_USAGE, done.stderr
    assert suggestion in done.stderr and "internal error" not in done.stderr
    assert done.stderr.startswith("Usage: caxton") and "Try 'caxton" in done.stderr


def test_caxton_alone_prints_the_help_with_every_command() -> None:
    done = cli()
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("Usage: caxton [OPTIONS] COMMAND [ARGS]...")
    listed = re.findall(r"^  ([a-z]+)  ", done.stdout.split("Commands:")[1], re.MULTILINE)
    assert sorted(listed) == sorted(commands.COMMANDS)
    assert "--install-completion" in done.stdout and "--show-completion" in done.stdout


@pytest.mark.parametrize("group", GROUPS)
def test_a_group_without_its_subcommand_prints_its_help(run_cli: Run, group: str) -> None:
    bare, asked = run_cli(group), run_cli(group, "-h")
    assert (bare.code, bare.err) == (0, "")
    assert bare.out == asked.out
    assert bare.out.startswith(f"Usage: caxton {group} [OPTIONS] COMMAND [ARGS]...") and "Commands:" in bare.out


def test_the_missing_argument_of_a_fresh_process_is_a_usage_error() -> None:
    done = cli("agents", "status")
    assert done.returncode == main.EXIT_USAGE
    assert done.stderr.splitlines() == [
        "Usage: caxton agents status [OPTIONS] NAME",
        "Try 'caxton agents status -h' for help.",
        "",
        "Error: Missing argument 'NAME'.",
    ]


def command_paths() -> Iterator[list[str]]:
    commands.register(main.app)
    root = usage.readable(typer.main.get_command(main.app))

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return walk(root, [])


@pytest.mark.parametrize("path", [" ".join(p) for p in command_paths()])
def test_help_shows_readable_metavars(run_cli: Run, path: str) -> None:
    shown = run_cli(*path.split(), "-h")
    assert shown.code == 0, shown.err
    assert not TYPE_METAVAR.findall(shown.out), shown.out
    usage_line = shown.out.splitlines()[0]
    assert re.fullmatch(r"Usage: caxton[a-z -]* \[OPTIONS\]( [A-Z_|\[\].]+| COMMAND \[ARGS\]\.\.\.)*", usage_line)


def test_metavars_name_what_a_value_is(run_cli: Run) -> None:
    validate, apply = run_cli("validate", "-h").out, run_cli("apply", "-h").out
    assert validate.startswith("Usage: caxton validate [OPTIONS] [PATH]...")
    assert re.search(r"^  \[PATH\]\.\.\.\s+Directories or agent files", validate, re.MULTILINE)
    assert "--ref REV" in validate and "-o, --output [text|json|github|sarif]" in validate
    assert apply.startswith("Usage: caxton apply [OPTIONS] [PLAN_FILE|DIR]")
    for option in ("--engine URL", "--token TOKEN", "--timeout SECONDS"):
        assert option in apply
    assert "--out FILE" in run_cli("plan", "-h").out
    assert "caxton agents send [OPTIONS] NAME MESSAGE" in run_cli("agents", "send", "-h").out
    assert "--limit INTEGER" in run_cli("agents", "logs", "-h").out


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "reconcile"])
def test_the_help_has_examples_that_use_real_options(run_cli: Run, command: str) -> None:
    shown = run_cli(command, "-h").out
    examples = shown.split("Examples:")[1].split("\n\n")[0].splitlines()[1:]
    assert len(examples) >= 3, shown
    for example in examples:
        words = example.split()
        assert words[:2] == ["caxton", command], example
        options = shown.split("Examples:")[0] + shown.split("Options:")[-1]
        for option in (w for w in re.split(r"\s{2,}", example.strip())[0].split() if w.startswith("-")):
            assert re.search(rf"(^|[ ,]){re.escape(option)}\b", options, re.MULTILINE), (option, example)
