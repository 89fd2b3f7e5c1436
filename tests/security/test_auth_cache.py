"""The slow hash runs once per token per process; expiry follows the clock; the file never holds the token."""

from __future__ import annotations

import pytest

from caxton.engine import auth
from caxton.rules import tokens as token_format


def _tokens(clock: list[float], expires: float | None = None) -> tuple[auth.Tokens, str]:
    token, token_id = token_format.new_token()
    digest = token_format.hash_token(token)
    entry = token_format.TokenEntry("ci", frozenset({"deploy"}), digest, token_id, None, expires)
    return auth.Tokens([entry], clock=lambda: clock[0]), token


def test_scrypt_runs_once_per_token(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = auth.check_hash
    monkeypatch.setattr(auth, "check_hash", lambda token, stored: calls.append(token) or real(token, stored))
    tokens, token = _tokens([0.0])
    assert tokens.cached(token) is None
    for _ in range(5):
        principal = tokens.resolve(token)
        assert principal.name == "ci" and principal.has("read") and not principal.has("admin")
    assert tokens.cached(token) == principal
    wrong = token[:-4] + "AAAA"
    for _ in range(3):
        with pytest.raises(auth.TokenRefused, match="not valid"):
            tokens.resolve(wrong)
    assert calls == [token, wrong]


def test_an_expiry_is_checked_on_every_request_not_only_the_first() -> None:
    clock = [1000.0]
    tokens, token = _tokens(clock, expires=2000.0)
    assert tokens.resolve(token).name == "ci"
    clock[0] = 2000.0
    with pytest.raises(auth.TokenRefused, match="token 'ci' expired at"):
        tokens.cached(token)


def test_the_entry_holds_a_salted_hash_never_the_token() -> None:
    token, token_id = token_format.new_token()
    first, second = token_format.hash_token(token), token_format.hash_token(token)
    assert first != second and token not in first and token_id in token
    assert token_format.check_hash(token, first) and token_format.check_hash(token, second)
    assert not token_format.check_hash(token + "x", first) and not token_format.check_hash(token, "scrypt$garbage")


def test_the_api_token_is_one_admin_named_api_token() -> None:
    tokens = auth.load_tokens(None, "static-secret")
    principal = tokens.resolve("static-secret")
    assert principal.name == "api-token" and all(principal.has(role) for role in token_format.ROLES)
