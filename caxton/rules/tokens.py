"""The tokens file's format, shared by the engine (which reads it) and ``caxton token`` (which writes it).

Roles, the entries (name, id, roles, agent allow-list, expiry, and only a slow
salted scrypt hash of the token, never the token), new tokens
(``cxt_<id>_<secret>``), their hashes and the check of a hash. Pure: text in,
entries out (the engine reads the file, ``caxton.engine.auth``; the CLI writes
it, ``caxton.cli.token``); the standard library and PyYAML only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from caxton.errors import InvalidInput
from caxton.spec.identity import agent_id

READ, MESSAGE, MEMORY_READ, MEMORY_WRITE, DEPLOY, ADMIN = (
    "read", "message", "memory-read", "memory-write", "deploy", "admin")
ROLES = (READ, MESSAGE, MEMORY_READ, MEMORY_WRITE, DEPLOY, ADMIN)

#: scrypt cost: ~50 ms and 16 MiB per verification, once per token per process.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: A token: ``cxt_<id>_<secret>``; the id (8 hex digits) picks the file entry to check.
TOKEN_PATTERN = re.compile(r"^cxt_([0-9a-f]{8})_[A-Za-z0-9_-]{20,}$")


@dataclass(frozen=True)
class TokenEntry:
    """One entry of the tokens file."""

    name: str
    roles: frozenset[str]
    hash: str
    id: str | None = None
    agents: frozenset[str] | None = None
    expires: float | None = None


# --- hashes and new tokens -------------------------------------------------------------------------


def hash_token(token: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): what the tokens file stores instead of the token."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def check_hash(token: str, stored: str) -> bool:
    """Constant-time check of ``token`` against a ``hash_token`` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        given = hashlib.scrypt(token.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(expected), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return scheme == "scrypt" and hmac.compare_digest(given, expected)


def new_token() -> tuple[str, str]:
    """A fresh token and its public id (``cxt_<id>_<secret>``: the id picks the file entry to check)."""
    token_id = secrets.token_hex(4)
    return f"cxt_{token_id}_{secrets.token_urlsafe(32)}", token_id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- the tokens file -------------------------------------------------------------------------------


def entries_of(text: str, where: object) -> list[TokenEntry]:
    """The entries of a tokens file's text (``where``: the file, for messages); raises ``InvalidInput``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidInput(f"cannot read the tokens file {where}: {error}",
                           hint="check security.tokens_file (CAXTON_TOKENS_FILE)") from None
    items = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InvalidInput(f"{where}: expected a mapping with a list under 'tokens'",
                           hint="see docs/security.md for the tokens file format")
    entries = [parse_entry(item, f"{where}: tokens[{index}]") for index, item in enumerate(items)]
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise InvalidInput(f"{where}: token name {entry.name!r} appears twice", hint="names must be unique")
        seen.add(entry.name)
    return entries


def parse_entry(item: Any, where: str) -> TokenEntry:
    """One entry of a tokens file, checked; raises ``InvalidInput`` saying where and what."""
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: expected a mapping", hint="see docs/security.md for the tokens file format")
    unknown = set(item) - {"name", "id", "roles", "agents", "expires", "hash"}
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                           hint="keys: name, id, roles, agents, expires, hash")
    name, digest, roles = item.get("name"), item.get("hash"), item.get("roles")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$", name):
        raise InvalidInput(f"{where}: name must be 1-100 letters, digits, '-', '_', '.', '@'", hint="fix the name")
    if not isinstance(digest, str) or not digest.startswith("scrypt$"):
        raise InvalidInput(f"{where} ({name}): hash must be a scrypt hash, never the token itself",
                           hint="make entries with `caxton token create`")
    if not isinstance(roles, list) or not roles or any(role not in ROLES for role in roles):
        raise InvalidInput(f"{where} ({name}): roles must be a non-empty list of {', '.join(ROLES)}",
                           hint="fix the roles")
    agents = item.get("agents")
    if agents is not None and (not isinstance(agents, list) or not all(isinstance(a, str) for a in agents)):
        raise InvalidInput(f"{where} ({name}): agents must be a list of agent names", hint="fix the agents")
    token_id = item.get("id")
    if token_id is not None and not (isinstance(token_id, str) and re.match(r"^[0-9a-f]{8}$", token_id)):
        raise InvalidInput(f"{where} ({name}): id must be 8 hex digits", hint="copy it from `caxton token create`")
    return TokenEntry(name=name, roles=frozenset(roles), hash=digest, id=token_id,
                      agents=frozenset(agent_id(a) for a in agents) if agents is not None else None,
                      expires=_expiry(item.get("expires"), where))


def _expiry(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{where}: expires {value!r} is not an ISO 8601 time",
                               hint="e.g. 2027-01-31T00:00:00Z") from None
    else:
        raise InvalidInput(f"{where}: expires must be an ISO 8601 time", hint="e.g. 2027-01-31T00:00:00Z")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def file_entry(name: str, token_id: str, digest: str, roles: Iterable[str], agents: Iterable[str] | None,
               expires: float | None) -> dict[str, Any]:
    """The tokens-file entry of a new token (no token in it: only its hash)."""
    entry: dict[str, Any] = {"name": name, "id": token_id, "roles": list(roles)}
    if agents is not None:
        entry["agents"] = list(agents)
    if expires is not None:
        entry["expires"] = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    entry["hash"] = digest
    return entry
