"""Embedded vector memory: entities, relations and 384-dim embeddings in SQLite.

The engine owns one :class:`caxton.memory.service.MemoryService` and calls it
from its API handlers and the config-agent runtime. Modules:

- ``embeddings``: all-MiniLM-L6-v2 through onnxruntime + tokenizers (lazy).
- ``schema``: the SQLite connection (pysqlite3 + sqlite-vec) and migrations.
- ``store``: SQL for entities, relations and vectors (single writer).
- ``index``: the in-memory search index kept in step with the store.
- ``service``: the facade (limits, scopes, search, context for prompts).
- ``transfer``: export/import in JSON lines.

Nothing here is imported by ``caxton --help``: numpy, onnxruntime, tokenizers
and sqlite-vec load only inside the functions that need them.
"""
