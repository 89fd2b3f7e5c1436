"""Tools a config agent's model may call (docs/tools.md).

- ``base``: the one tool interface (``Tool``), what a tool is built with (``ToolContext``),
  the per-agent ``ToolRegistry`` and ``build_registry``; other kinds of tool (WASM, MCP)
  plug in as ``ToolSource``s.
- ``builtin``: the built-in tools (``caxton.spec.tools.BUILTIN_TOOLS`` names them).
- ``http``: the ``http_client`` built-in (allow-listed hosts, size- and time-capped).
- ``wasm``: WASM tools (a WASM agent with a ``tool:`` section), called through the engine's message path.
- ``mcp``: tools of MCP servers (``server.tool``) through the official ``mcp`` SDK (``McpHub``);
  ``mcp_session``: one pooled client session of it and its capped transport.
- ``loop``: the tool loop the config runtime runs for one message.
"""
