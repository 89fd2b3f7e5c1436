"""Serving messages: the path from a routed message to the runtime that answers it.

- ``router``: which revision of an agent serves a message (traffic weights, sticky conversations, a mirror).
- ``runtime``: the runtime shape (``AgentRuntime``) and ``ServingRuntime``, which counts in-flight messages
  so a hot swap drains the old revision before stopping it.
- ``bulkhead``: per-agent bounded queues on the event loop (429/503 with Retry-After).
- ``reload``: SIGHUP: re-read the settings and apply them without a restart.
- ``conversations``: config agents' conversation history (in memory, or durable in the engine's database).
"""
