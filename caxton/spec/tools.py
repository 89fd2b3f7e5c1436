"""The built-in tool registry: names config agents may list under ``tools``.

The engine implements exactly these (``caxton.llm.tools.builtin``; docs/tools.md);
validation checks agent files against them. A test keeps the two lists equal.
A name ``server.tool`` is a tool of an MCP server the agent declares (``mcp_reference``).
"""

from __future__ import annotations

BUILTIN_TOOLS: dict[str, str] = {
    "memory_search": "semantic search in the agent's own memory scope",
    "memory_store": "store a fact (an entity with observations) in the agent's own memory scope",
    "json_validator": "validate a JSON document against a JSON Schema",
    "json_parser": "parse JSON text and pick a value by path",
    "csv_parser": "parse CSV text into rows",
    "calculator": "evaluate an arithmetic expression",
    "http_client": "GET or POST to a host on the agent's security_policy.allowed_hosts",
}


def mcp_reference(name: str) -> tuple[str, str] | None:
    """``(server, tool)`` of a tool reference ``server.tool`` (an MCP server's tool), else ``None``.

    Server names have no dot, so the first dot splits; a tool name may hold more.
    """
    server, dot, tool = name.partition(".")
    return (server, tool) if dot and server and tool else None
