"""``caxton token create`` / ``caxton token hash``: make API tokens for the engine's tokens file.

``create`` prints a new token once (first line of stdout) and the tokens-file
entry that goes with it (name, id, roles, agents, expiry and a scrypt hash:
never the token), or appends that entry to ``--file``. ``hash`` reads a
token of your own from stdin and prints its hash. The formats and checks
live in ``caxton.rules.tokens``, shared with the engine (stdlib and PyYAML only).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from caxton.cli.common import Output, OutputOption
from caxton.cli.views import render
from caxton.errors import InvalidInput

app = typer.Typer(help="Make API tokens for the engine's tokens file (security.tokens_file).", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The token's name (recorded as the actor of what it does).")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="A role: read, message, memory-read, memory-write, "
                                            "deploy or admin (repeat for several).", show_default=False)],
    agent: Annotated[list[str] | None, typer.Option("--agent", "-a", help="Limit the message role to this agent "
                                                    "(repeat for several).", show_default=False)] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Expiry: a duration from now (30d, 12h) or an "
                                                "ISO 8601 time.", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Append the entry to this tokens file "
                                              "(created if missing).", show_default=False)] = None,
    output: OutputOption = Output.text,
) -> int:
    """Create a token: print it once, with its tokens-file entry (or append the entry to --file)."""
    from caxton.cli.views.tokens import NewToken
    from caxton.rules import tokens

    unknown = [r for r in role if r not in tokens.ROLES]
    if unknown:
        raise InvalidInput(f"unknown role {unknown[0]!r}", hint=f"roles: {', '.join(tokens.ROLES)}")
    token, token_id = tokens.new_token()
    entry = tokens.file_entry(name, token_id, tokens.hash_token(token), dict.fromkeys(role), agent or None,
                              _expiry(expires))
    tokens.parse_entry(entry, "the new entry")  # the engine must accept what we print
    if file is not None:
        _append(file, entry, name)
    render(NewToken(name, token, entry, file), output)
    return 0


@app.command("hash")
def hash_command(output: OutputOption = Output.text) -> int:
    """Read a token from stdin and print its scrypt hash (for a tokens-file entry's `hash`)."""
    from caxton.cli.views.tokens import TokenHash
    from caxton.rules import tokens

    token = sys.stdin.readline().strip()
    if not token:
        raise InvalidInput("no token on stdin", hint="echo \"$TOKEN\" | caxton token hash")
    render(TokenHash(tokens.hash_token(token)), output)
    return 0


def _expiry(value: str | None) -> float | None:
    if value is None:
        return None
    from caxton.spec.units import parse_duration

    try:
        return time.time() + parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--expires {value!r} is neither a duration nor an ISO 8601 time",
                           hint="e.g. --expires 30d or --expires 2027-01-31T00:00:00Z") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()  # naive: UTC, as the engine reads it


def _append(path: Path, entry: dict[str, Any], name: str) -> None:
    import yaml

    from caxton.rules import tokens

    data: Any = {"tokens": []}
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text.strip():
        if any(known.name == name for known in tokens.entries_of(text, path)):
            raise InvalidInput(f"{path} already has a token named {name!r}", hint="pick another name")
        data = yaml.safe_load(text)
    data["tokens"].append(entry)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
