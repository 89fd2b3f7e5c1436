"""Model of ``caxton.yaml``: environments, defaults and the engine's settings.

The engine reads the ``server``, ``store``, ``memory``, ``llm``, ``security``,
``templates``, ``conversations``, ``logging``, ``observability`` and ``backups`` sections; the CLI reads
``environments``, ``defaults`` and ``agents_dir``. Keys Caxton knows but does not build are refused with advice
(``caxton.spec.refused``); every key's effect is listed in ``tests/operations/test_config_keys.py``. Precedence
(flags > CAXTON_* env > file > defaults) is applied
by the engine's config loader, not here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from caxton.spec.agent import Strict
from caxton.spec.units import Duration, Size

URL_PATTERN = r"^https?://[^\s/]+(/.*)?$"


class Environment(Strict):
    """A named set of engines that receive the same desired state, in order."""

    engines: list[str] = Field(min_length=1)
    description: str | None = None
    branch: str | None = None

    @field_validator("engines")
    @classmethod
    def _urls(cls, engines: list[str]) -> list[str]:
        for url in engines:
            if not re.match(URL_PATTERN, url):
                raise ValueError(f"engine URL {url!r} must start with http:// or https://")
        return engines


class Defaults(Strict):
    """What commands that talk to an engine use when given neither ``--engine`` nor ``CAXTON_ENGINE_URL``."""

    engine: str | None = Field(None, pattern=URL_PATTERN, description="the engine URL")
    environment: str | None = Field(None, description="else the first engine of this environment")


# --- TLS (issue 12, i12-limits) ------------------------------------------------------
class TLSSettings(Strict):
    """HTTPS for the engine's API; ``client_ca_file`` also requires a client certificate (mTLS)."""

    cert_file: str | None = Field(None, description="PEM certificate chain of the engine (with key_file: HTTPS)")
    key_file: str | None = Field(None, description="PEM private key of cert_file")
    client_ca_file: str | None = Field(None, description="PEM CA bundle; when set, clients must present a "
                                       "certificate it signed (mTLS)")

    @model_validator(mode="after")
    def _pairs(self) -> TLSSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls needs both cert_file and key_file (or neither)")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("tls.client_ca_file (mTLS) needs cert_file and key_file too")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: str = ".caxton"
    max_request_size: Size = Field(1024 * 1024, gt=0)
    max_apply_size: Size = Field(64 * 1024 * 1024, gt=0,
                                 description="body limit of plan submissions (specs + modules)")
    max_message_size: Size = Field(256 * 1024, gt=0)
    revisions_kept: int = Field(10, ge=1, le=1000)
    drain_timeout: Duration = 30.0
    drain_delay: Duration = Field(
        0.0, ge=0, le=3600, description="after SIGTERM, how long the engine keeps serving with /readyz answering "
        "503 (so a load balancer or Kubernetes stops sending it traffic) before it stops accepting connections "
        "and drains")
    # --- bulkheads (issue 18): docs/limits.md ---
    max_queued_messages_per_agent: int = Field(
        64, ge=0, le=1_000_000, description="messages that may wait for a busy agent; past it 429 agent_overloaded")
    max_queue_wait: Duration = Field(5.0, gt=0, le=3600,
                                     description="longest a message waits for its agent; past it 503 queue_timeout")
    max_inflight_messages: int = Field(
        1024, ge=1, le=10_000_000, description="messages running or waiting engine-wide at which /ready says 503")
    max_wasm_memory: Size | None = Field(
        None, gt=0, description="engine-wide budget of WASM memory: the sum of every running revision's "
        "max_memory_bytes (times its instances); a deploy past it is refused. Unset: half of the machine's memory")
    # --- the event stream (issue 17): docs/api.md ---
    stream_heartbeat: Duration = Field(15.0, gt=0, le=3600, description="an idle event stream "
                                       "(GET /api/v1/events/stream) gets a comment line this often")
    stream_queue: int = Field(1000, ge=1, le=1_000_000, description="frames an event stream may hold for a "
                              "client that reads slowly; past it the client gets `event: overflow` and is dropped")
    tls: TLSSettings = Field(default_factory=TLSSettings)  # type: ignore[arg-type]


# --- rate limits (issue 12, i12-limits) ----------------------------------------------
class RateLimits(Strict):
    """Token buckets per token name (per client address without one); a rate of 0 turns a budget off."""

    messages_per_second: float = Field(1000.0, ge=0, le=1_000_000_000,
                                       description="POST /agents/{name}/messages, sustained")
    messages_burst: int = Field(2000, ge=1, le=1_000_000_000, description="messages allowed at once before the rate applies")
    mutations_per_second: float = Field(100.0, ge=0, le=1_000_000_000,
                                        description="other POST/PUT/PATCH/DELETE, sustained")
    mutations_burst: int = Field(1000, ge=1, le=1_000_000_000, description="mutating calls allowed at once")


class SecuritySettings(Strict):
    api_token: str | None = Field(None, json_schema_extra={"secret": True},
                                  description="one admin token named 'api-token' (prefer tokens_file)")
    # --- auth (issue 12): named tokens, roles, allowed Host names ---
    tokens_file: str | None = Field(None, description="YAML file of named tokens (hashes only); see docs/security.md")
    allowed_hosts: list[str] = Field(default_factory=list,
                                     description="extra Host names the engine answers to (besides loopback and "
                                                 "server.host)")
    rate_limits: RateLimits = Field(default_factory=RateLimits)  # type: ignore[arg-type]


# --- the state backend (issue 14, i14-pgstore) ------------------------------------------
class StoreSettings(Strict):
    """Where the engine keeps its state: SQLite in the data directory (default), or PostgreSQL (docs/scale-out.md)."""

    url: str | None = Field(None, json_schema_extra={"secret": True},
                            description="postgresql://USER:PASSWORD@HOST:PORT/DATABASE: keep agents, revisions, "
                            "events, applies, the apply lock, rollouts, conversations and agent logs in this "
                            "PostgreSQL database (its password is never shown); unset: the embedded SQLite store")

    @field_validator("url")
    @classmethod
    def _postgres(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^postgres(ql)?://", url):
            raise ValueError("must be a postgresql:// URL (unset: the embedded SQLite store)")
        return url


class EngineMemorySettings(Strict):
    enabled: bool = True
    backend: Literal["sqlite", "postgres", "embedded"] = Field(
        "sqlite", description="sqlite: one file in the data directory (embedded is its former name); postgres: "
        "PostgreSQL + pgvector at memory.url, shared by every engine on it")
    sqlite_path: str = "memory.db"
    url: str | None = Field(None, pattern=r"^postgres(ql)?://\S*$", json_schema_extra={"secret": True},
                            description="postgres backend: the database (postgresql://USER:PASSWORD@HOST/DB); "
                                        "default: the CAXTON_STORE_URL environment variable")
    embedding_model: Literal["all-MiniLM-L6-v2"] = "all-MiniLM-L6-v2"
    model_path: str | None = Field(None, description="bring your own model.onnx (sha256 not pinned)")
    tokenizer_path: str | None = None
    max_entities: int = Field(100_000, ge=1, le=1_000_000_000)
    max_observation_size: Size = Field(16 * 1024, gt=0)
    max_batch_size: int = Field(1000, ge=1, le=1_000_000)


class OpenAIProvider(Strict):
    base_url: str = Field("https://api.openai.com/v1", pattern=URL_PATTERN)
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: Duration = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    model: str | None = None


class LLMProviders(Strict):
    openai: OpenAIProvider = Field(default_factory=OpenAIProvider)  # type: ignore[arg-type]
    # --- budgets (issue 18): docs/limits.md ---
    max_prompt_size: Size = Field(1024 * 1024, ge=1024, description="bytes of one prompt sent to a provider "
                                  "(system + history + user); the oldest history turns are left out to fit")
    max_reply_size: Size = Field(2 * 1024 * 1024, ge=1024, description="bytes of one provider reply; a larger "
                                 "one fails the message (502, reason reply_too_large)")


class LoggingSettings(Strict):
    """The engine's own log (its loggers and uvicorn's): level, line format, and where it goes."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = Field("text", description="text lines, or one JSON object a line (time, "
                                            "level, logger, message, and agent, revision, request_id when known)")
    file: str | None = Field(None, description="also write the log to this file (relative: to caxton.yaml's "
                             "directory), rotated at max_file_size; SIGHUP re-opens it")
    max_file_size: Size = Field(100 * 1024 * 1024, ge=1024, description="rotate the log file past this size")
    backup_count: int = Field(5, ge=0, le=1000, description="rotated log files kept (file.1 ... file.N)")
    # --- durable agent logs (issue 13, i13-durable) ---
    agent_log_lines: int = Field(1000, ge=1, le=1_000_000, description="log lines kept per agent in the store "
                                 "(GET /agents/{name}/logs)")
    agent_log_retention: Duration = Field(7 * 86400.0, gt=0, description="agent log lines older than this are "
                                          "deleted")


# --- durable conversations (issue 13, i13-durable) ------------------------------------
class ConversationSettings(Strict):
    """Config agents' conversation history, kept in the store (survives restarts and crashes)."""

    max_turns: int = Field(100, ge=2, le=100_000, description="turns (user and assistant messages) kept per "
                           "conversation; the oldest are dropped")
    retention: Duration = Field(3600.0, gt=0, description="a conversation idle this long is closed (it no longer "
                                "counts against max_conversations) and turns older than this are deleted")
    max_history_size: Size = Field(1024 * 1024, ge=1024, description="bytes of turns kept per open conversation "
                                   "(and put in its prompts); the oldest are dropped")
    min_idle: Duration = Field(30.0, ge=0, le=86400, description="when an agent's max_conversations are all open, "
                               "a new conversation closes the least recently used one idle at least this long")


class TemplateSettings(Strict):
    """Bounds of one prompt render (config agents); a render past them fails that message (reason template)."""

    max_output_size: Size = Field(1024 * 1024, ge=1, description="characters a rendered prompt may have, and the "
                                  "largest value (text, list, number argument) a template may build")
    max_render_time: Duration = Field(1.0, gt=0, description="seconds one prompt may take to render")


# --- scheduled backups (issue 13, i13-alerts) -------------------------------------------
class BackupSettings(Strict):
    """Backups the engine takes by itself every ``interval`` (none when it is unset); see docs/operations.md."""

    interval: Duration | None = Field(None, ge=1.0, description="take a backup this often (e.g. 6h); unset: no "
                                      "scheduled backups")
    directory: str = Field("backups", min_length=1, description="where archives go: relative to the data "
                           "directory, or absolute")
    retention: int = Field(7, ge=1, le=100_000, description="archives kept in directory (the newest; older ones "
                           "are deleted once a new one is verified)")
    max_age: Duration | None = Field(None, gt=0, description="also delete archives older than this (the newest "
                                     "is always kept)")


class ObservabilitySettings(Strict):
    metrics_enabled: bool = Field(True, description="serve /metrics (false: /metrics answers 404, no metrics "
                                  "listener)")
    metrics_port: int = Field(0, ge=0, le=65535, description="also serve /metrics and /healthz (only) on "
                              "server.host:metrics_port, plain http; 0: no such listener")
    # --- auth (issue 12) ---
    metrics_auth: Literal["token", "none"] = Field(
        "token", description="/metrics needs a token with the read role ('token') or is open ('none')")


class ProjectConfig(Strict):
    """The whole of ``caxton.yaml``; every section is optional."""

    agents_dir: str = "agents"
    environments: dict[str, Environment] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)  # type: ignore[arg-type]
    server: ServerSettings = Field(default_factory=ServerSettings)  # type: ignore[arg-type]
    security: SecuritySettings = Field(default_factory=SecuritySettings)  # type: ignore[arg-type]
    memory: EngineMemorySettings = Field(default_factory=EngineMemorySettings)  # type: ignore[arg-type]
    llm: LLMProviders = Field(default_factory=LLMProviders)  # type: ignore[arg-type]
    logging: LoggingSettings = Field(default_factory=LoggingSettings)  # type: ignore[arg-type]
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)  # type: ignore[arg-type]
    templates: TemplateSettings = Field(default_factory=TemplateSettings)  # type: ignore[arg-type]
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)  # type: ignore[arg-type]
    backups: BackupSettings = Field(default_factory=BackupSettings)  # type: ignore[arg-type]
    store: StoreSettings = Field(default_factory=StoreSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _default_environment(self) -> ProjectConfig:
        name = self.defaults.environment
        if name is not None and name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ValueError(f"defaults.environment {name!r} is not one of the environments ({known})")
        return self

    @model_validator(mode="after")
    def _backups_of_the_embedded_store(self) -> ProjectConfig:
        if self.store.url is not None and self.backups.interval is not None:
            raise ValueError("backups.interval backs up the embedded SQLite store, but store.url puts the state in "
                             "PostgreSQL: unset backups.interval and back the database up with pg_dump or "
                             "continuous archiving (docs/scale-out.md)")
        return self

    @model_validator(mode="after")
    def _metrics_port(self) -> ProjectConfig:
        port = self.observability.metrics_port
        if port != 0 and port == self.server.port:
            raise ValueError(f"observability.metrics_port {port} is server.port too: pick another port for the "
                             "metrics listener, or 0 for none (/metrics is on the API's port anyway)")
        return self
