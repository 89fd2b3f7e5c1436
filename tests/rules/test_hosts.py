"""The one allowed-hosts rule (``caxton.rules.hosts``) http_client and MCP servers are held to."""

from __future__ import annotations

import pytest

from caxton.rules.hosts import host_allowed


@pytest.mark.parametrize(("url", "allowed", "expected"), [
    ("http://api.example:8080/x", ("api.example",), True),
    ("http://api.example:8080/x", ("api.example:8080",), True),
    ("http://api.example:8080/x", ("api.example:80",), False),
    ("https://API.example/x", ("api.example:443",), True),
    ("ftp://api.example/x", ("api.example",), False),
    ("http://evil.example/x", ("api.example",), False),
    ("http://[::1]:9/x", ("[::1]:9",), True),
    ("http://[::1]:9/x", ("::1",), True),
    ("http://api.example:99999/x", ("api.example",), False),  # a malformed port or host allows nothing
    ("http://[api.example/x", ("api.example", "[api.example"), False),
    ("http://:8080/x", ("",), False),
    ("http://127.0.0.1:9/mcp", (), False),  # no allowed hosts: none
])
def test_host_allowed(url: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert host_allowed(url, allowed) is expected
