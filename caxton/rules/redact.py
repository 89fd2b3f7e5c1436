"""Which values never appear in plan output or the console: secret fields and things that look like keys.

Shared by the toolchain (``caxton.planning.diff``: plan output) and the engine (``caxton.engine.ui``: an
agent's spec in the console)."""

from __future__ import annotations

from typing import Any

from caxton.spec.secrets import SECRET_NAME, SECRET_VALUE

#: Dotted paths of spec fields marked secret in the models (none in agent files today; keep the hook).
SECRET_PATHS: frozenset[str] = frozenset()


def _contains_secret_value(value: Any) -> bool:
    if isinstance(value, str):
        return bool(SECRET_VALUE.search(value))
    if isinstance(value, dict):
        return any(_contains_secret_value(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret_value(v) for v in value)
    return False


def _secret_name_in(value: Any) -> bool:
    if isinstance(value, dict):
        return any(SECRET_NAME.search(str(k)) or _secret_name_in(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_secret_name_in(v) for v in value)
    return False


def is_sensitive(path: list[str | int], value: Any) -> bool:
    """True when the value at ``path`` (a spec path) must be shown as (sensitive)."""
    dotted = ".".join(str(p) for p in path)
    if dotted in SECRET_PATHS:
        return True
    if path and path[0] == "parameters":
        if any(SECRET_NAME.search(str(p)) for p in path[1:] if isinstance(p, str)):
            return True
        if _secret_name_in(value):
            return True
    if path and path[0] == "mcp_servers" and _url_with_query(value):
        return True  # an MCP server URL's query may carry a key; its headers only name variables
    return _contains_secret_value(value)


def _url_with_query(value: Any) -> bool:
    """A string (or a server entry's ``url``) with a query string (``?...``)."""
    if isinstance(value, str):
        return "://" in value and "?" in value
    if isinstance(value, dict):
        return _url_with_query(value.get("url"))
    if isinstance(value, list):
        return any(_url_with_query(v) for v in value)
    return False


SENSITIVE = "(sensitive)"


def redacted(value: Any, path: list[str | int] | None = None) -> Any:
    """``value`` (a spec, or a part of one at ``path``) with every sensitive value replaced by ``(sensitive)``."""
    path = path or []
    if path and is_sensitive(path, value) and not isinstance(value, dict | list):
        return SENSITIVE
    if isinstance(value, dict):
        return {key: redacted(item, [*path, str(key)]) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, [*path, index]) for index, item in enumerate(value)]
    return SENSITIVE if is_sensitive(path, value) else value
