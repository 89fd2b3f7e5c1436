"""WASM tools: a WASM agent with a ``tool:`` section, called by config agents (docs/tools.md).

A call is one message to the tool's agent, sent through the engine's message path
(its current routing: a canary of the tool's module splits tool calls too; its
sandbox, fuel, memory and time limits, pool and metrics): the arguments object is
the envelope's ``content``, the reply is the result (docs/wasm-abi.md, "WASM tools").
A failed message (trap, fuel, timeout, bad or oversized reply, the module's own
``{"error": ...}``, the tool not serving) becomes an ``errors.ToolFailure`` the model
sees. The engine supplies a ``WasmTools`` (``caxton.engine.tools``): this module
knows nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from caxton import errors
from caxton.llm.tools.base import JsonValue, Tool, ToolContext
from caxton.spec.identity import agent_id, is_valid_name

#: Failure reasons of the message path -> the tool loop's reasons (anything else: ``failed``).
_REASONS = {"timeout": "timeout", "reply_too_large": "too_large", "message_too_large": "too_large",
            "payload_too_large": "too_large"}


class WasmTools(Protocol):
    """What WASM tools need from the engine."""

    def section(self, name: str) -> Mapping[str, Any] | None:
        """The ``tool:`` section (``description``, ``parameters``) of the serving WASM agent ``name``, or None."""
        ...

    def names(self) -> Sequence[str]:
        """The names of every WASM tool the engine serves."""
        ...

    def send(self, name: str, arguments: dict[str, Any]) -> Any:
        """The reply of agent ``name`` to ``arguments``; raises ``errors.CaxtonError``."""
        ...


@dataclass(frozen=True)
class WasmTool:
    """One WASM tool, as one config agent lists it."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    tools: WasmTools

    def call(self, arguments: dict[str, Any], deadline: float) -> JsonValue:
        try:
            return self.tools.send(self.name, arguments)
        except errors.CaxtonError as error:
            raise _failure(self.name, error) from None


def _failure(name: str, error: errors.CaxtonError) -> errors.ToolFailure:
    """The tool result of a failed message to WASM tool ``name``: the sandbox's reason in the message."""
    why = str(getattr(error, "reason", None) or error.code)
    return errors.ToolFailure(f"WASM tool {name!r} failed ({why}): {error.message}",
                              reason=_REASONS.get(why, "failed"), hint=error.hint)


@dataclass(frozen=True)
class WasmToolSource:
    """The ``ToolSource`` of WASM tools: a listed name that is a serving WASM agent with a ``tool:`` section."""

    tools: WasmTools

    def names(self) -> Sequence[str]:
        return self.tools.names()

    def build(self, name: str, context: ToolContext) -> Tool | None:
        section = self.tools.section(agent_id(name)) if is_valid_name(name) else None
        if section is None:
            return None
        return WasmTool(name, str(section.get("description", "")),
                        dict(section.get("parameters") or {"type": "object"}), self.tools)
