"""The built-in tool registry: names agents may list under ``tools``.

The engine exposes exactly these; validation checks agent files against them.
"""

from __future__ import annotations

BUILTIN_TOOLS: dict[str, str] = {
    "http_client": "HTTP requests to allow-listed endpoints",
    "csv_parser": "parse CSV text into rows",
    "json_validator": "validate JSON documents against a schema",
    "json_parser": "parse and query JSON documents",
    "calculator": "evaluate arithmetic expressions",
    "text_summarizer": "summarize long text",
    "web_search": "search the web through the configured provider",
    "file_reader": "read files from the agent's workspace",
    "file_writer": "write files to the agent's workspace",
    "memory_search": "semantic search in the agent's memory",
    "memory_store": "store entities and observations in memory",
    "email_sender": "send email through the configured relay",
    "database_query": "read-only SQL against a configured database",
    "chart_generator": "render charts from tabular data",
    "code_executor": "run code in an isolated sandbox",
    "shell": "run whitelisted shell commands",
}
