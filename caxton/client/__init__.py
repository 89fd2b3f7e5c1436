"""HTTP client of the engine API (``caxton.client.engine.EngineClient``), used by the CLI.

The CLI never touches the engine's internals: every command that talks to
an engine goes through this package.
"""
