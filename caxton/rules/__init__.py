"""Pure rules both stacks apply the same way: the toolchain when it validates, the runtime when it deploys.

- ``templates``: the one Jinja2 sandbox for prompt templates (options, variables, the check, the
  deploy-time refusal) and ``template_safety``: what that sandbox refuses, read from the parsed tree;
- ``wasmbin``: the pure-Python reader of a WebAssembly binary (layout, interface, trimmed exports);
- ``models``: where a key sits in a pydantic model (for "unknown key" messages);
- ``suggest``: "did you mean" for names;
- ``hosts``: whether a URL's host is on an agent's ``security_policy.allowed_hosts`` (http_client, MCP servers);
- ``redact``: which values never show (plan output, the console);
- ``agent_health``: an agent's HEALTH from its live state (``caxton agents list``, the console).

No I/O and no library of the engine extra (jinja2, pydantic, the standard library); imports only
``caxton.spec`` and ``caxton.errors``. The import contracts (pyproject.toml) keep it so.
"""
