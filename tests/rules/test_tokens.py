"""``caxton.rules.tokens``: the tokens file's format, written by ``caxton token`` and read by the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from caxton.engine import auth
from caxton.errors import InvalidInput
from caxton.rules import tokens


def test_an_entry_written_is_read_back_and_its_token_checks() -> None:
    token, token_id = tokens.new_token()
    match = tokens.TOKEN_PATTERN.match(token)
    assert match is not None and match.group(1) == token_id
    entry = tokens.file_entry("ci", token_id, tokens.hash_token(token), ["deploy"], ["scorer"], 1_800_000_000.0)
    assert token not in yaml.safe_dump(entry)
    [read] = tokens.entries_of(yaml.safe_dump({"tokens": [entry]}), "tokens.yaml")
    assert (read.name, read.id, read.roles, read.agents, read.expires) == (
        "ci", token_id, frozenset({"deploy"}), frozenset({"scorer"}), 1_800_000_000.0)
    assert tokens.check_hash(token, read.hash) and not tokens.check_hash(token + "x", read.hash)


@pytest.mark.parametrize(("text", "message"), [
    ("tokens: [", "cannot read the tokens file tokens.yaml"),
    ("tokens: {}", "tokens.yaml: expected a mapping with a list under 'tokens'"),
    ("tokens: [{name: ci, roles: [read], hash: plain}]", "hash must be a scrypt hash"),
    ("tokens: [{name: ci, roles: [root], hash: scrypt$x}]", "roles must be a non-empty list"),
    ("tokens: [{name: a, roles: [read], hash: scrypt$x}, {name: a, roles: [read], hash: scrypt$y}]",
     "token name 'a' appears twice"),
])
def test_a_bad_file_says_where_and_what(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("$", r"\$")):
        tokens.entries_of(text, "tokens.yaml")


def test_the_engine_reads_the_same_format_from_disk(tmp_path: Path) -> None:
    token, token_id = tokens.new_token()
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump({"tokens": [tokens.file_entry("ops", token_id, tokens.hash_token(token),
                                                                 ["admin"], None, None)]}))
    assert auth.load_tokens(path, None).resolve(token).name == "ops"
    with pytest.raises(InvalidInput, match="cannot read the tokens file"):
        auth.read_tokens_file(tmp_path / "missing.yaml")
