"""The OpenAI chat-completions wire format: tool names as OpenAI accepts them, and what its answers say.

``wire_name`` maps a tool name outside ``^[a-zA-Z0-9_-]{1,64}$`` (an MCP tool
``server.tool``) to one OpenAI accepts (``server__tool``); ``renamed_spec`` and
``renamed_calls`` put those names in a request, ``usage`` reads an answer's
token counts, and ``error_text``, ``retry_after`` and ``HINTS`` turn a failed
answer into a failure's message and hint (``redact`` keeps the key out of it).
Pure functions, used by ``caxton.llm.providers.OpenAICompatibleProvider``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from caxton.spec.jsonvalues import loads_strict

if TYPE_CHECKING:
    import httpx

#: Bytes of an upstream answer quoted in a failure's message.
EXCERPT = 300

HINTS = {
    "unauthorized": "check the key in environment variable {env} (its value is never logged) "
    "and llm.openai.base_url in caxton.yaml",
    "rejected": "check the agent's llm.model, temperature and max_tokens against what the endpoint accepts",
    "unreachable": "check llm.openai.base_url in caxton.yaml and that the endpoint is up",
    "timeout": "raise resource_limits.response_timeout in the agent file or llm.openai.timeout in caxton.yaml",
    "upstream_error": "the endpoint failed after all retries; try again later or raise llm.openai.retries",
    "rate_limited": "the endpoint is rate limiting; try again later or raise llm.openai.retries",
    "bad_response": "llm.openai.base_url must point at an OpenAI-compatible API (ending in /v1)",
    "reply_too_large": "lower the agent's llm.max_tokens, or raise llm.max_reply_size in caxton.yaml",
}


def redact(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


def reply_body_limit(max_reply_size: int) -> int:
    """Bytes of an answer's body read for a reply of ``max_reply_size``: JSON escapes (``\\uXXXX``: 6 bytes
    for a character of 1 to 3 UTF-8 bytes) and the envelope (64 KiB) included."""
    return 6 * max_reply_size + 64 * 1024


def error_text(raw: bytes, reason_phrase: str) -> str:
    try:
        data = loads_strict(raw)
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if isinstance(message, str):
            return message[:EXCERPT]
    except (ValueError, AttributeError, RecursionError):
        pass
    return raw[:EXCERPT].decode("utf-8", "replace") or reason_phrase


def retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


_WIRE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def wire_name(name: str) -> str:
    """``name`` as an OpenAI function name: ``.`` becomes ``__``, other characters outside ``[A-Za-z0-9_-]``
    become ``_``; past 64 characters it is cut and ends in 8 hex digits of its SHA-256."""
    if _WIRE_NAME.match(name):
        return name
    wire = re.sub(r"[^A-Za-z0-9_-]", "_", name.replace(".", "__"))
    if len(wire) > 64:
        wire = _hashed(wire, name)
    return wire


def wire_names(names: list[str]) -> dict[str, str]:
    """Each name's ``wire_name``, made unique (a second name with the same wire name ends in its hash)."""
    out: dict[str, str] = {}
    for name in names:
        wire = wire_name(name)
        if wire in out.values():
            wire = _hashed(wire, name)
        out[name] = wire
    return out


def _hashed(wire: str, name: str) -> str:
    """``wire`` cut to 55 characters and ending in 8 hex digits of the SHA-256 of ``name``."""
    return f"{wire[:55]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def tool_names(tools: tuple[dict[str, Any], ...]) -> list[str]:
    return [str(t.get("function", {}).get("name", "")) for t in tools]


def renamed_spec(spec: dict[str, Any], wire: Mapping[str, str]) -> dict[str, Any]:
    function = spec.get("function", {})
    return {**spec, "function": {**function, "name": wire.get(function.get("name", ""), function.get("name"))}}


def renamed_calls(message: dict[str, Any], wire: Mapping[str, str]) -> dict[str, Any]:
    """An assistant turn of the tool loop with its calls' names as sent."""
    calls = message.get("tool_calls")
    if not calls:
        return message
    return {**message, "tool_calls": [renamed_spec(c, wire) for c in calls]}


def usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, int)}
