"""The one tool interface, and the registry of one agent's tools.

A tool has a ``name``, a ``description`` and a JSON Schema of its arguments
(``parameters``, an object schema), and is called with the parsed arguments
and a ``time.monotonic()`` deadline; it returns a JSON value or raises
``errors.ToolFailure`` (any other exception is the tool's bug: the loop turns
it into a ``failed`` result). Tools are built per agent revision from a
``ToolContext``; a ``ToolSource`` turns a name into a tool. The built-in
source is ``caxton.llm.tools.builtin.BUILTIN``; WASM tools
(``caxton.llm.tools.wasm.WasmToolSource``) and MCP servers (the engine's
``caxton.llm.tools.mcp.McpHub``) are further sources handed to
``build_registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from caxton import errors
from caxton.spec.agent import McpServerSpec

JsonValue = Any  # a value json.dumps accepts


class Tool(Protocol):
    """What the tool loop calls."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]:
        """JSON Schema (an ``object`` schema) of the arguments."""
        ...

    def call(self, arguments: dict[str, Any], deadline: float) -> JsonValue:
        """Run once; raise ``errors.ToolFailure`` on a failure the model should see."""
        ...


@runtime_checkable
class ToolMemory(Protocol):
    """What the memory tools need from the engine's memory (``caxton.memory.service.MemoryService``)."""

    def recall(self, agent: str, scope: str, query: str, k: int, min_similarity: float) -> list[dict[str, Any]]: ...

    def note(
        self, agent: str, scope: str, name: str, entity_type: str, observations: Sequence[str]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ToolContext:
    """What an agent's tools are built with: who calls and what it may reach."""

    agent: str
    memory_scope: str = "agent"
    memory: ToolMemory | None = None
    memory_min_similarity: float = 0.2
    allowed_hosts: tuple[str, ...] = ()
    mcp_servers: tuple[McpServerSpec, ...] = ()


class ToolSource(Protocol):
    """A kind of tool: turns a name into a tool for one agent, or ``None`` if it has no such tool."""

    def names(self) -> Sequence[str]: ...

    def build(self, name: str, context: ToolContext) -> Tool | None: ...


@dataclass(frozen=True)
class FunctionTool:
    """A tool made of a function: the shape of every built-in."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    run: Callable[[dict[str, Any], float], JsonValue]

    def call(self, arguments: dict[str, Any], deadline: float) -> JsonValue:
        return self.run(arguments, deadline)


class ToolRegistry:
    """The tools of one agent revision, by name."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def function_specs(self) -> list[dict[str, Any]]:
        """The tools as OpenAI-compatible function declarations (``tools=[...]`` of a chat completion)."""
        return [
            {"type": "function",
             "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}}
            for t in self._tools.values()
        ]


def build_registry(names: Sequence[str], context: ToolContext, sources: Sequence[ToolSource]) -> ToolRegistry:
    """The tools ``names`` from the first source that has each; a name none has raises ``InvalidInput``."""
    tools: list[Tool] = []
    for name in names:
        tool = next((t for t in (s.build(name, context) for s in sources) if t is not None), None)
        if tool is None:
            known = sorted({n for s in sources for n in s.names()})
            raise errors.InvalidInput(
                f"agent {context.agent!r}: the engine has no tool {name!r}",
                hint=f"tools are: {', '.join(known)}; `caxton validate` checks the names",
            )
        tools.append(tool)
    return ToolRegistry(tools)
