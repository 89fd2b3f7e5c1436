"""Builds the runtime of one agent revision from its spec (and module bytes).

Two stages, matching the state machines: ``build`` (WASM: compile and check
the module against the policy -> ``Loaded``; config: construct the runtime
-> ``Registered``) and then ``AgentRuntime.start`` (instantiate and init /
check the provider -> ``Running`` / ``Active``). The sandbox and the
config-agent runtime are imported lazily so importing the engine stays
cheap. Called by ``caxton.engine.operations``.

A WASM revision runs ``caxton.engine.wasm_budget.pool_size(spec)`` instances,
the figure the engine-wide memory budget reserves memory for.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caxton import metrics
from caxton.engine import wasm_budget
from caxton.engine.serving.conversations import InMemoryConversationStore
from caxton.llm.conversations import ConversationStore
from caxton.engine.logs import AgentLogs
from caxton.engine.serving.runtime import AgentRuntime
from caxton.errors import InvalidInput, SandboxError
from caxton.spec.agent import ConfigAgent, WasmAgent
from caxton.spec.project import LLMProviders, TemplateSettings

AgentModel = ConfigAgent | WasmAgent


@dataclass
class RuntimeContext:
    """Everything runtimes share: LLM providers, conversations, logs, memory."""

    logs: AgentLogs
    providers: Any = None
    conversations: ConversationStore = field(default_factory=InMemoryConversationStore)
    memory: Any = None
    #: Bounds of prompt renders (caxton.yaml ``templates``).
    templates: TemplateSettings = field(default_factory=TemplateSettings)  # type: ignore[arg-type]
    #: Prompt and reply size caps of config agents (caxton.yaml ``llm``).
    llm: LLMProviders = field(default_factory=LLMProviders)  # type: ignore[arg-type]
    #: Tool sources beside the built-ins (``caxton.llm.tools.base.ToolSource``: WASM tools, ...).
    tool_sources: tuple[Any, ...] = ()
    #: The MCP client every config agent's ``server.tool`` calls go through (``caxton.llm.tools.mcp.McpHub``).
    mcp: Any = field(default_factory=lambda: _mcp_hub())

    def close(self) -> None:
        self.mcp.close()
        if self.providers:
            from caxton.llm import providers

            providers.close_providers(self.providers)
        engines = sys.modules.get("caxton.sandbox.engines")  # only if loaded: don't import wasmtime to stop it
        if engines is not None:
            engines.shutdown_tickers()


def _mcp_hub() -> Any:
    from caxton.llm.tools.mcp import McpHub  # the SDK itself is imported on the first MCP call

    return McpHub()


def build(spec: AgentModel, module: bytes | None, *, revision: int, context: RuntimeContext) -> AgentRuntime:
    """Construct (not start) the runtime of one revision; raises ``CaxtonError`` when it cannot."""
    if isinstance(spec, WasmAgent):
        if module is None:
            raise InvalidInput(f"WASM agent {spec.name!r} needs its module bytes", hint="send the module base64-encoded")
        return _wasm(spec, module, revision=revision, context=context)
    return _config(spec, revision=revision, context=context)


def _wasm(spec: WasmAgent, module: bytes, *, revision: int, context: RuntimeContext) -> AgentRuntime:
    from caxton.sandbox import runtime as sandbox

    try:
        loaded = sandbox.load_module(
            module, spec.security_policy, max_module_size=spec.resource_limits.max_module_size
        )
    except SandboxError as error:
        if isinstance(error.details, dict) and error.details.get("violation"):
            metrics.WASM_VIOLATIONS.labels(spec.id, str(error.details["violation"])).inc()
        raise
    runtime: AgentRuntime = sandbox.WasmAgentRuntime(
        loaded, spec.resource_limits, spec.security_policy,
        agent=spec.id, revision=revision, log=context.logs.sink(spec.id, revision), pool_size=wasm_budget.pool_size(spec),
    )
    return runtime


def _config(spec: ConfigAgent, *, revision: int, context: RuntimeContext) -> AgentRuntime:
    from caxton.llm.config_runtime import ConfigAgentRuntime
    from caxton.llm.tools import builtin

    if context.memory is not None:
        context.memory.set_agent_limit(spec.id, spec.resource_limits.max_memory_entities)
    runtime: AgentRuntime = ConfigAgentRuntime(
        spec, revision=revision, providers=context.providers,
        conversations=context.conversations, memory=context.memory, limits=context.templates, llm=context.llm,
        log_sink=context.logs.sink(spec.id, revision),
        tool_sources=(builtin.BUILTIN, context.mcp, *context.tool_sources),
    )
    return runtime


def use_module_cache(directory: Path) -> None:
    """Keep compiled WASM modules under ``directory`` so restarts skip compilation."""
    from caxton.sandbox import runtime as sandbox

    sandbox.set_cache_dir(directory)


def max_message_size(spec: AgentModel, server_limit: int) -> int:
    return min(server_limit, spec.resource_limits.max_message_size)
