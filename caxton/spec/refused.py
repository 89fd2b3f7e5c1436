"""Keys of ``caxton.yaml`` that Caxton knows but deliberately does not build, and what to use instead.

The seeds' guides (and older configs) write keys for features Caxton does not
have (tracing, an external memory backend, SQLite tuning) or has under another
name (``security.tls`` is ``server.tls``). ``ProjectConfig`` forbids unknown
keys; this table turns the refusal of a known one into advice naming what to
do instead. Read by the engine's settings loader (``caxton.engine.config``: all
refusals of a file at once, with the file's path and line) and by ``caxton
validate`` (``caxton.validation.schema``). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

_REMOVE = "remove the key"

#: Key path -> why it is refused and what to use instead (shown after ``<path>: ``).
REFUSED: dict[tuple[str, ...], str] = {
    ("server", "agents_dir"): "not supported: the engine serves what is applied to it, not a folder; run "
    "`caxton up` (or `caxton reconcile --watch`) in the desired-state repository, whose folder of agents is "
    "the top-level agents_dir; " + _REMOVE,
    ("observability", "tracing_enabled"): "not supported: Caxton has no tracing (use /metrics and "
    "logging.format: json, whose lines carry the request id); " + _REMOVE,
    ("observability", "tracing"): "not supported: Caxton has no tracing; " + _REMOVE,
    ("memory", "sqlite_config"): "not supported: the engine sets SQLite's pragmas itself (WAL journal, "
    "synchronous NORMAL); " + _REMOVE,
    ("memory", "embedding_config"): "not supported: embeddings run on the CPU through onnxruntime and are not "
    "tunable; bring another model file with memory.model_path and memory.tokenizer_path, or " + _REMOVE,
    ("memory", "cleanup"): "not supported: run `caxton memory vacuum` (e.g. from a systemd timer) instead; "
    + _REMOVE,
    ("memory", "qdrant_config"): "not supported: the memory backends are sqlite (a file in the data "
    "directory) and postgres (pgvector); " + _REMOVE + " and set memory.backend: sqlite or postgres",
    ("security", "tls"): "set server.tls.cert_file and server.tls.key_file instead (HTTPS is on when both are "
    "set; server.tls.client_ca_file adds mTLS)",
    ("security", "authentication"): "set security.tokens_file instead (named tokens with roles, "
    "docs/security.md); there are no JWTs",
    ("security", "api_keys"): "set security.tokens_file instead (named tokens with roles, docs/security.md)",
    ("security", "rate_limiting"): "set security.rate_limits instead (messages_per_second, messages_burst, "
    "mutations_per_second, mutations_burst)",
    ("security", "cors"): "not supported: the engine answers no cross-origin browser calls (a foreign Origin "
    "gets 403); list extra Host names in security.allowed_hosts, or " + _REMOVE,
    ("analysis",): "not supported at the top level: set rollout.analysis in each agent file (there is no "
    "project-wide default); " + _REMOVE,
}


def advice(path: Sequence[str | int]) -> str | None:
    """Why the key at ``path`` is refused and what to use instead; ``None`` when it is not a known one."""
    return REFUSED.get(tuple(str(part) for part in path))
