"""Whether a URL's host is on an agent's ``security_policy.allowed_hosts``: the one rule for every tool that
reaches out (``http_client`` on each request and redirect, MCP servers at validation and on each call)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit


def host_allowed(url: str, allowed: Sequence[str]) -> bool:
    """Whether ``url``'s host (and port) is on ``allowed`` (``name`` matches any port, ``name:port`` one).

    Only ``http`` and ``https`` URLs with a host can be allowed; a malformed host or port allows nothing.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed "[" or a port that is no number in range
        return False
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("http", "https"):
        return False
    port = port or (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    return any(entry.lower() in (host, shown, f"{shown}:{port}") for entry in allowed)
