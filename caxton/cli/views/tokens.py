"""Views of ``caxton token``: a new token with its tokens-file entry, and a token's hash."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton.cli.views.registry import Note, json_view, text_view


@dataclass(frozen=True)
class NewToken:
    """``token create``: the token (shown once), its entry, and the tokens file it was added to (if any)."""

    name: str
    token: str
    entry: dict[str, Any]
    file: Path | None


@dataclass(frozen=True)
class TokenHash:
    """``token hash``: the scrypt hash of a token read from stdin."""

    digest: str


@json_view("NewToken")
def new_token_json(new: NewToken) -> Any:
    return {"name": new.name, "token": new.token, "entry": new.entry, "file": str(new.file) if new.file else None}


@text_view("NewToken")
def new_token_text(new: NewToken) -> Iterator[str]:
    import yaml

    yield new.token
    if new.file is not None:
        yield Note(f"added token {new.name!r} to {new.file}; the token above is shown only once")
        return
    yield ""
    yield "# add to the tokens file (security.tokens_file), under `tokens:`; the token above is shown only once"
    yield yaml.safe_dump([new.entry], sort_keys=False).rstrip()


@json_view("TokenHash")
def hash_json(hashed: TokenHash) -> Any:
    return {"hash": hashed.digest}


@text_view("TokenHash")
def hash_text(hashed: TokenHash) -> list[str]:
    return [hashed.digest]
