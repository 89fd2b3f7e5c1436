"""The config-agent runtime: the LLM sibling of the WASM sandbox (``caxton.sandbox``).

- ``config_runtime``: ``ConfigAgentRuntime`` (a config agent's messages: templates, memory context, provider).
- ``providers``: the LLM providers (OpenAI-compatible HTTP, the echo provider), retries and circuit breakers.
- ``templating``: the bounded Jinja2 sandbox the prompts render in (size and time per message).

In the runtime stack beside ``sandbox`` and ``memory``: the engine builds and serves it.
"""
