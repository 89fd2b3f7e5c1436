"""Helpers of the auth tests: a tokens file with one token per role, and an engine serving it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from caxton.rules import tokens as token_format
from tests.support.engine import EngineProcess, running_engine

#: name -> (roles, agents allow-list, seconds until expiry)
TOKENS: dict[str, tuple[list[str], list[str] | None, float | None]] = {
    "reader": (["read"], None, None),
    "messenger": (["message"], None, None),
    "memory-reader": (["memory-read"], None, None),
    "memory-writer": (["memory-write"], None, None),
    "deployer": (["deploy"], None, None),
    "root": (["admin"], None, None),
    "scorer-only": (["message"], ["scorer"], None),
    "expired": (["admin"], None, -60.0),
}


@dataclass
class AuthEngine:
    engine: EngineProcess
    tokens: dict[str, str]
    tokens_file: Path

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return httpx.request(method, self.engine.url + path, headers=headers, timeout=30.0, **kwargs)


def write_tokens(path: Path, specs: dict[str, tuple[list[str], list[str] | None, float | None]]) -> dict[str, str]:
    """Write a tokens file for ``specs``; returns name -> token."""
    made: dict[str, str] = {}
    entries = []
    for name, (roles, agents, expires_in) in specs.items():
        token, token_id = token_format.new_token()
        made[name] = token
        expires = time.time() + expires_in if expires_in is not None else None
        entries.append(token_format.file_entry(name, token_id, token_format.hash_token(token), roles, agents, expires))
    path.write_text(yaml.safe_dump({"tokens": entries}, sort_keys=False), encoding="utf-8")
    return made


@contextmanager
def auth_engine(tmp_path: Path, *, config: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[AuthEngine]:
    """A real engine whose caxton.yaml points at a tokens file with ``TOKENS``."""
    tokens_file = tmp_path / "tokens.yaml"
    tokens = write_tokens(tokens_file, TOKENS)
    settings = {"security": {"tokens_file": "tokens.yaml"}, **(config or {})}
    config_path = tmp_path / "caxton.yaml"
    config_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with running_engine(tmp_path, config=config_path, **kwargs) as engine:
        yield AuthEngine(engine, tokens, tokens_file)
