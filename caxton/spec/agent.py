"""Models of agent files: config agents and WASM agents.

An agent file is markdown with YAML frontmatter (the body is the agent's
``documentation``) or TOML with the same keys. ``kind`` defaults to
``config``. ``parse_agent`` turns a mapping into the right model; pydantic's
errors are turned into diagnostics by ``caxton.validation``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)

from caxton.spec import abi
from caxton.spec.identity import NAME_PATTERN, agent_id
from caxton.spec.units import Duration, Size

SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
CAPABILITY_PATTERN = r"^[a-z][a-z0-9]*(?:[-_.:][a-z0-9]+)*$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
SPLIT_PATTERN = r"^\s*(\d{1,3})\s*/\s*(\d{1,3})\s*$"
#: ``resource_limits.max_tool_calls`` of config agents: default and most.
DEFAULT_MAX_TOOL_CALLS = 10
MAX_TOOL_CALLS = 1000
#: ``resource_limits.tool_call_timeout`` default, seconds.
DEFAULT_TOOL_CALL_TIMEOUT = 10.0
#: ``mcp_servers[].name``: what a tool reference ``server.tool`` starts with (no dot).
MCP_SERVER_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
#: ``allowed_tools`` entries: an MCP tool name (the protocol's characters).
MCP_TOOL_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$"
#: An HTTP header name (an RFC 9110 token) and an environment variable name.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
#: Headers the MCP transport sets itself: an agent file may not set them.
RESERVED_MCP_HEADERS = frozenset({
    "accept", "connection", "content-length", "content-type", "host", "last-event-id", "mcp-protocol-version",
    "mcp-session-id", "transfer-encoding",
})
HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
#: Most instances one WASM revision may run (``resource_limits.pool_size``).
MAX_POOL_SIZE = 64

MemoryScope = Literal["agent", "workspace", "global"]
#: The last four are the seeds' WASM hot-reload names: graceful = immediate (with draining),
#: traffic-splitting = canary, parallel = shadow (see docs/rollouts.md).
Strategy = Literal[
    "immediate", "gradual", "canary", "blue-green", "ab-test", "shadow", "graceful", "traffic-splitting", "parallel",
]
WasmFeature = Literal[
    "simd", "relaxed-simd", "threads", "reference-types", "bulk-memory", "multi-memory",
    "memory64", "tail-call",
]


DEFAULT_DENIED_FEATURES: tuple[WasmFeature, ...] = ("threads", "simd", "relaxed-simd", "memory64", "multi-memory")


class Strict(BaseModel):
    """Base for file models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MemorySpec(Strict):
    """Whether and how the agent uses the engine's vector memory."""

    enabled: bool = False
    scope: MemoryScope = Field("agent", description="agent: only this agent; workspace; global")
    max_results: int = Field(5, ge=1, le=100, description="entities retrieved per request")
    min_similarity: float = Field(0.2, ge=-1.0, le=1.0)


class LLMSpec(Strict):
    """Which LLM provider answers a config agent (providers are configured in caxton.yaml)."""

    provider: Literal["offline", "openai"] = "offline"
    model: str = Field("offline", min_length=1, max_length=200)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=1, le=1_000_000)


class PrometheusAnalysis(Strict):
    """An extra analysis query against a Prometheus server."""

    url: str = Field(pattern=r"^https?://")
    query: str = Field(min_length=1)
    threshold: float
    comparison: Literal["<", "<=", ">", ">="] = Field("<=", description="value <comparison> threshold passes")


class AnalysisSpec(Strict):
    """Per-step analysis of a canary over the engine's own metrics."""

    max_error_rate: float = Field(0.05, ge=0.0, le=1.0)
    max_p95_latency_ms: float | None = Field(None, gt=0, le=3_600_000)
    min_requests: int = Field(10, ge=0, le=1_000_000_000)
    on_no_data: Literal["fail", "pause", "pass"] = "pause"
    prometheus: PrometheusAnalysis | None = None


class PreviewCheck(Strict):
    """A message sent to a blue-green preview before the switch."""

    message: Any
    expect_contains: str | None = None


class RolloutSpec(Strict):
    """How the engine moves traffic to a new revision of this agent."""

    strategy: Strategy = "immediate"
    steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    interval: Duration = Field(60.0, gt=0, description="observation window per canary step")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)  # type: ignore[arg-type]
    auto_rollback: bool = True
    resume: bool = Field(True, description="after an engine crash, resume (true) or roll back (false)")
    preview_checks: list[PreviewCheck] = Field(default_factory=list)
    split: str | None = Field(None, pattern=SPLIT_PATTERN, description="ab-test split, e.g. 80/20")
    duration: Duration | None = Field(None, gt=0, description="ab-test and shadow duration (shadow default: one "
                                      "interval)")
    drain_timeout: Duration = 30.0

    @field_validator("steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: list[int]) -> list[int]:
        if not steps:
            raise ValueError("steps must not be empty (e.g. [10, 50, 100])")
        if any(s < 1 or s > 100 for s in steps):
            raise ValueError("each step is a traffic percentage between 1 and 100")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError("steps must increase strictly (e.g. [10, 50, 100])")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100")
        return steps

    @field_validator("split")
    @classmethod
    def _split_sums_to_100(cls, split: str | None) -> str | None:
        if split is None:
            return None
        match = re.match(SPLIT_PATTERN, split)
        if match and int(match.group(1)) + int(match.group(2)) != 100:
            raise ValueError(f"split {split!r} must add up to 100 (e.g. 80/20)")
        return split


class ConfigResourceLimits(Strict):
    """Limits of a config agent."""

    max_conversations: int = Field(
        100, ge=1, le=1_000_000, validation_alias=AliasChoices("max_conversations", "conversation_limit")
    )
    response_timeout: Duration = Field(30.0, gt=0)
    max_memory_entities: int | None = Field(None, ge=1, le=1_000_000_000)
    max_message_size: Size = Field(256 * 1024, gt=0)
    memory_scope: MemoryScope | None = Field(
        None, description="deprecated spelling of memory.scope", json_schema_extra={"deprecated": True}
    )
    max_tool_calls: int | None = Field(
        None, ge=0, le=MAX_TOOL_CALLS,
        description=f"tool calls one message may make (0: none); default {DEFAULT_MAX_TOOL_CALLS} (docs/tools.md)")
    tool_call_timeout: Duration | None = Field(
        None, gt=0, le=3600, description=f"time one tool call may take; default {DEFAULT_TOOL_CALL_TIMEOUT:g}s")

    @model_serializer(mode="wrap")
    def _without_unset_tool_limits(self, handler: SerializerFunctionWrapHandler, _: SerializationInfo) -> Any:
        """Leave the tool limits out while unset: the spec digest of an agent that does not set them stays."""
        return _drop_none(handler(self), ("max_tool_calls", "tool_call_timeout"))

    @property
    def tool_calls_limit(self) -> int:
        return DEFAULT_MAX_TOOL_CALLS if self.max_tool_calls is None else self.max_tool_calls

    @property
    def tool_timeout(self) -> float:
        return DEFAULT_TOOL_CALL_TIMEOUT if self.tool_call_timeout is None else self.tool_call_timeout


def _drop_none(data: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(data, dict):
        for key in keys:
            if data.get(key) is None:
                data.pop(key, None)
    return data


class ConfigSecurityPolicy(Strict):
    """What a config agent's tools may reach (docs/tools.md)."""

    allowed_hosts: list[Annotated[str, Field(pattern=HOST_PATTERN)]] = Field(
        default_factory=list,
        description="hosts http_client and MCP servers may reach: a name or IP, optionally :port "
        "(no port: any port); empty: none")


class McpHeaderValue(Strict):
    """Where a header value comes from: a named environment variable of the engine host (never a literal)."""

    env: str = Field(pattern=ENV_NAME_PATTERN, description="the engine host's environment variable holding the value")


class McpServerSpec(Strict):
    """An MCP server a config agent may call over streamable HTTP (docs/tools.md); its tools are ``name.tool``."""

    name: str = Field(pattern=MCP_SERVER_PATTERN,
                      description="the prefix of its tools in `tools:` (server.tool); lower case, no dot")
    url: str = Field(description="the streamable HTTP endpoint, http:// or https:// (e.g. http://127.0.0.1:8000/mcp)")
    headers: dict[Annotated[str, Field(pattern=HEADER_NAME_PATTERN)], McpHeaderValue] = Field(
        default_factory=dict,
        description="headers sent to the server, each value read from an environment variable: "
        "{Authorization: {env: MCP_TOKEN}}")
    allowed_tools: list[Annotated[str, Field(pattern=MCP_TOOL_PATTERN)]] = Field(
        min_length=1, description="the server's tools the agent may list in `tools:`; others are never offered")
    timeout: Duration | None = Field(
        None, gt=0, le=3600,
        description="time one call to this server may take; default and at most resource_limits.tool_call_timeout")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return check_mcp_url(url)

    @field_validator("headers", mode="before")
    @classmethod
    def _no_literal_values(cls, headers: Any) -> Any:
        if isinstance(headers, dict):
            literal = next((name for name, value in headers.items() if isinstance(value, (str, int, float))), None)
            if literal is not None:
                raise ValueError(f"header {literal!r}: a value comes only from an environment variable of the "
                                 "engine host: write {env: VARIABLE_NAME}, never the value itself")
        return headers

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, headers: dict[str, McpHeaderValue]) -> dict[str, McpHeaderValue]:
        reserved = sorted(h for h in headers if h.lower() in RESERVED_MCP_HEADERS)
        if reserved:
            raise ValueError(f"header {reserved[0]!r} is set by the MCP transport itself; remove it")
        return headers

    @model_serializer(mode="wrap")
    def _without_unset_timeout(self, handler: SerializerFunctionWrapHandler, _: SerializationInfo) -> Any:
        return _drop_none(handler(self), ("timeout",))


def check_mcp_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a readable host and port and no credentials; else ``ValueError`` (why)."""
    match = re.match(r"^(https?)://([^/?#]*)", url)
    if match is None:
        raise ValueError("must be an http:// or https:// URL (streamable HTTP)")
    if "@" in match.group(2):
        raise ValueError("must not carry credentials (user:password@): send them in a header read from an "
                         "environment variable")
    if not match.group(2) or match.group(2).startswith(":"):
        raise ValueError("has no host")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain spaces")
    try:
        urlsplit(url).port  # what the allowed-hosts check and the client read: a bracket or a port it cannot
    except ValueError as exc:
        raise ValueError(f"has a malformed host or port ({exc})") from None
    return url


class WasmResourceLimits(Strict):
    """Limits the sandbox enforces on every message to a WASM agent (each instance of its pool)."""

    max_memory_bytes: Size = Field(16 * 1024 * 1024, gt=0, le=4 * 1024**3,
                                   description="linear memory of one instance; at most 4GiB (the 32-bit limit)")
    fuel: int = Field(100_000_000, ge=1, le=2**63 - 1, description="fuel units per message")
    max_execution_time_ms: int = Field(1000, ge=1, le=600_000)
    max_message_size: Size = Field(256 * 1024, gt=0)
    max_module_size: Size = Field(16 * 1024 * 1024, gt=0)
    max_conversations: int = Field(1000, ge=1, le=1_000_000)
    pool_size: int | None = Field(
        None, ge=1, le=MAX_POOL_SIZE,
        description="instances serving messages in parallel (1: one at a time, in order); "
        "default: the engine's, min(4, half its CPU cores), at least 1")

    @model_serializer(mode="wrap")
    def _without_default_pool(self, handler: SerializerFunctionWrapHandler, _: SerializationInfo) -> Any:
        """Leave ``pool_size`` out while unset: the spec digest of an agent that does not set it stays as it was."""
        data = handler(self)
        if isinstance(data, dict) and data.get("pool_size") is None:
            data.pop("pool_size", None)
        return data


class SecurityPolicy(Strict):
    """What a WASM module may import and use."""

    allowed_imports: list[str] = Field(default_factory=lambda: list(abi.DEFAULT_ALLOWED_IMPORTS))
    max_memory_pages: int = Field(256, ge=1, le=65536)
    network_access: bool = False
    file_system_access: bool = False
    denied_features: list[WasmFeature] = Field(default_factory=lambda: list(DEFAULT_DENIED_FEATURES))

    @field_validator("allowed_imports")
    @classmethod
    def _qualified(cls, imports: list[str]) -> list[str]:
        for item in imports:
            if not re.match(r"^[A-Za-z_][\w-]*\.[\w*-]+$", item):
                raise ValueError(f"import {item!r} must be written module.name (e.g. caxton.log)")
        return imports


def instance_memory_limit(limits: WasmResourceLimits, policy: SecurityPolicy) -> int:
    """Bytes of linear memory one instance may have: ``max_memory_bytes`` capped by ``max_memory_pages``."""
    return min(limits.max_memory_bytes, policy.max_memory_pages * abi.WASM_PAGE_BYTES)


class AgentBase(Strict):
    """Fields every agent has."""

    name: str = Field(pattern=NAME_PATTERN, description="identity, compared in kebab form")
    version: str = Field(pattern=SEMVER_PATTERN, description="semantic version, e.g. 1.2.0")
    description: str | None = Field(None, max_length=2000)
    capabilities: list[Annotated[str, Field(pattern=CAPABILITY_PATTERN)]] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    memory: MemorySpec = Field(default_factory=MemorySpec)  # type: ignore[arg-type]
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)  # type: ignore[arg-type]
    documentation: str = Field("", description="markdown body of the agent file")

    @property
    def id(self) -> str:
        return agent_id(self.name)


class ConfigAgent(AgentBase):
    """An agent defined by prompts and an LLM provider."""

    kind: Literal["config"] = "config"
    system_prompt: str = Field(min_length=1)
    user_prompt_template: str | None = None
    llm: LLMSpec = Field(default_factory=LLMSpec)  # type: ignore[arg-type]
    resource_limits: ConfigResourceLimits = Field(default_factory=ConfigResourceLimits)  # type: ignore[arg-type]
    security_policy: ConfigSecurityPolicy | None = Field(
        None, description="what the agent's tools may reach (allowed_hosts: http_client and mcp_servers)")
    mcp_servers: list[McpServerSpec] = Field(
        default_factory=list, description="MCP servers whose allowed tools the agent may list as server.tool")

    @model_serializer(mode="wrap")
    def _without_unset_policy(self, handler: SerializerFunctionWrapHandler, _: SerializationInfo) -> Any:
        """Leave ``security_policy`` and an empty ``mcp_servers`` out (the spec digest of an agent without them stays)."""
        data = _drop_none(handler(self), ("security_policy",))
        if isinstance(data, dict) and not data.get("mcp_servers"):
            data.pop("mcp_servers", None)
        return data

    @field_validator("mcp_servers")
    @classmethod
    def _unique_servers(cls, servers: list[McpServerSpec]) -> list[McpServerSpec]:
        names = [s.name for s in servers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"server {twice[0]!r} is declared twice; give each server its own name")
        return servers

    def mcp_server(self, name: str) -> McpServerSpec | None:
        return next((s for s in self.mcp_servers if s.name == name), None)

    @property
    def allowed_hosts(self) -> list[str]:
        return list(self.security_policy.allowed_hosts) if self.security_policy else []

    @model_validator(mode="after")
    def _legacy_memory_scope(self) -> ConfigAgent:
        legacy = self.resource_limits.memory_scope
        if legacy is not None and "scope" not in self.memory.model_fields_set:
            self.memory = self.memory.model_copy(update={"scope": legacy})
        return self


class ToolSection(Strict):
    """A WASM agent's ``tool:`` section: the agent is also a tool config agents may list (docs/tools.md).

    A call runs as one message to the agent: the arguments object in, the result JSON out
    (docs/wasm-abi.md, "WASM tools").
    """

    description: str = Field(min_length=1, max_length=2000, description="what the tool does, shown to the model")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema of the arguments (an object schema); checked against the meta-schema")


class WasmAgent(AgentBase):
    """An agent whose logic is a WebAssembly module implementing the Caxton ABI."""

    kind: Literal["wasm"]
    module: str = Field(min_length=1, description="path of the .wasm file, relative to the agent file")
    sha256: str | None = Field(None, pattern=SHA256_PATTERN, description="pin of the module's digest")
    resource_limits: WasmResourceLimits = Field(default_factory=WasmResourceLimits)  # type: ignore[arg-type]
    security_policy: SecurityPolicy = Field(default_factory=SecurityPolicy)  # type: ignore[arg-type]
    tool: ToolSection | None = Field(
        None, description="makes the agent a tool config agents may list under tools (docs/tools.md)")

    @model_serializer(mode="wrap")
    def _without_unset_tool(self, handler: SerializerFunctionWrapHandler, _: SerializationInfo) -> Any:
        """Leave ``tool`` out while unset (the spec digest of an agent that is no tool stays)."""
        return _drop_none(handler(self), ("tool",))


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "config"))
    return str(getattr(value, "kind", "config"))


AgentSpec = Annotated[
    Union[Annotated[ConfigAgent, Tag("config")], Annotated[WasmAgent, Tag("wasm")]],
    Discriminator(_kind_of),
]
AGENT_ADAPTER: TypeAdapter[ConfigAgent | WasmAgent] = TypeAdapter(AgentSpec)

KINDS = ("config", "wasm")


def parse_agent(data: dict[str, Any]) -> ConfigAgent | WasmAgent:
    """Validate a mapping into an agent model (raises pydantic.ValidationError)."""
    return AGENT_ADAPTER.validate_python(data)


def model_for_kind(kind: str) -> type[ConfigAgent] | type[WasmAgent] | None:
    models: dict[str, type[ConfigAgent] | type[WasmAgent]] = {"config": ConfigAgent, "wasm": WasmAgent}
    return models.get(kind)
