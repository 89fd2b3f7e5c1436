"""The engine's side of WASM tools (``caxton.llm.tools.wasm``): which agents are tools, and the call.

A WASM tool is a WASM agent whose serving revision's spec has a ``tool:`` section; a
call is one message through ``Engine.send`` (the router: the tool's current routing,
its sandbox, limits, metrics and rollout windows). Made by ``caxton.engine.core`` at
start and handed to config-agent runtimes through ``RuntimeContext.tool_sources``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from caxton.engine.state.records import AgentRow
from caxton.engine.state.store import Store

Send = Callable[[str, Any], dict[str, Any]]


class EngineWasmTools:
    """``caxton.llm.tools.wasm.WasmTools`` over the engine's store and message path."""

    def __init__(self, store: Store, send: Send) -> None:
        self._store = store
        self._send = send

    def section(self, name: str) -> Mapping[str, Any] | None:
        row = self._store.agent(name)
        return self._section(row) if row is not None else None

    def names(self) -> list[str]:
        return [row.id for row in self._store.agents() if self._section(row) is not None]

    def _section(self, row: AgentRow) -> Mapping[str, Any] | None:
        """The ``tool:`` section of ``row``'s serving revision, if it is a WASM agent with one."""
        if row.kind != "wasm" or row.revision is None:
            return None
        section = self._store.spec_of(self._store.revision(row.id, row.revision)).get("tool")
        return section if isinstance(section, dict) else None

    def send(self, name: str, arguments: dict[str, Any]) -> Any:
        return self._send(name, arguments)["reply"]
