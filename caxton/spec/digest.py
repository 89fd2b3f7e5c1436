"""Stable digests of agent specs and of the whole desired state.

The desired-state loader, the planner and the engine all compute digests
here, so "the same spec" means the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec_digest(spec_json: dict[str, Any], module_sha256: str | None = None) -> str:
    """Digest of one agent: its spec JSON (``model_dump(mode="json")``) plus its module digest."""
    payload = {"spec": spec_json, "module_sha256": module_sha256}
    return "sha256:" + sha256_hex(canonical_json(payload))


def state_digest(agent_digests: Iterable[tuple[str, str]]) -> str:
    """Digest of a whole desired state from (agent id, spec digest) pairs, order-independent."""
    return "sha256:" + sha256_hex(canonical_json(sorted(agent_digests)))
