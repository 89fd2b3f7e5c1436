"""The cross-file tool check: every name under an agent's ``tools`` is a tool the engine will have.

A name is a built-in tool (``caxton.spec.tools.BUILTIN_TOOLS``) or a WASM tool of
the desired state: a WASM agent with a ``tool:`` section, named by its agent name
(compared as identities, like agent names); a ``server.tool`` name is an MCP server's tool, checked per file
(``caxton.validation.agent_checks``, CX323/CX324). Anything else is ``CX302``, with a
"did you mean" over both kinds; a WASM tool named like a built-in is ``CX321``
(the built-in would answer); a WASM tool whose ``max_execution_time_ms`` is longer than
the caller's ``tool_call_timeout`` is a warning, ``CX322``. Called by
``caxton.validation.results.combine``; pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from caxton.rules.suggest import did_you_mean, one_of
from caxton.spec.diagnostics import Diagnostic
from caxton.spec.identity import agent_id
from caxton.spec.tools import BUILTIN_TOOLS, mcp_reference
from caxton.validation.documents import diagnostic

if TYPE_CHECKING:
    from caxton.validation.results import FileResult, ValidatedAgent


def check(asked: Sequence[FileResult], every: Sequence[ValidatedAgent]) -> list[Diagnostic]:
    """Diagnostics of the ``asked`` files (their tool names, even when their schema check failed) against
    ``every`` agent of the desired state."""
    by_id = {agent.id: agent for agent in every}
    wasm_tools = sorted(agent.name for agent in every if agent.is_tool)
    found: list[Diagnostic] = []
    for result in asked:
        for index, name in enumerate(result.tools):
            if name and name not in BUILTIN_TOOLS and mcp_reference(name) is None:
                target = by_id.get(agent_id(name))
                problem = _problem(name, target, wasm_tools) or _slower(name, target, result.agent)
                if problem is not None:
                    code = "CX302" if target is None or not target.is_tool else "CX322"
                    found.append(diagnostic(code, result.path, problem[0], result.tool_pos(index), hint=problem[1]))
        agent = result.agent
        if agent is not None and agent.is_tool and agent.id in _BUILTIN_IDS:
            found.append(diagnostic(
                "CX321", agent.file, f"WASM tool {agent.name!r} has the name of the built-in tool "
                f"{_BUILTIN_IDS[agent.id]!r}: config agents listing it would get the built-in", result.name_pos(),
                hint="rename the WASM agent"))
    return found


_BUILTIN_IDS = {agent_id(name): name for name in BUILTIN_TOOLS}


def _slower(name: str, tool: ValidatedAgent | None, caller: ValidatedAgent | None) -> tuple[str, str] | None:
    """A WASM tool whose own time limit is longer than the caller's ``tool_call_timeout`` (CX322)."""
    if tool is None or caller is None or caller.kind != "config":
        return None
    own_ms = getattr(tool.spec.resource_limits, "max_execution_time_ms", None)  # a WASM agent's
    timeout = getattr(caller.spec.resource_limits, "tool_timeout", None)  # a config agent's, seconds
    if own_ms is None or timeout is None or own_ms / 1000 <= timeout:
        return None
    own = own_ms / 1000
    return (f"WASM tool {name!r} may run {own:g}s (its max_execution_time_ms), longer than this agent's "
            f"tool_call_timeout ({timeout:g}s): a slow call is cut short here first",
            "raise resource_limits.tool_call_timeout here, or lower the tool's max_execution_time_ms")


def _problem(name: str, target: ValidatedAgent | None, wasm_tools: list[str]) -> tuple[str, str | None] | None:
    """(message, hint) when ``name`` is no tool; None when it is a WASM tool."""
    if target is not None and target.is_tool:
        return None
    if target is not None and target.kind == "wasm":
        return (f"{name!r} is a WASM agent ({target.file}) but not a tool",
                "add a tool: section (description, parameters) to it to make it one (docs/tools.md)")
    if target is not None:
        return (f"{name!r} is a {target.kind} agent ({target.file}), not a tool",
                "only built-in tools and WASM agents with a tool: section can be listed under tools")
    known = [*BUILTIN_TOOLS, *wasm_tools]
    listed = f"built-in tools are {one_of(BUILTIN_TOOLS, limit=20)}" + (
        f"; WASM tools: {', '.join(wasm_tools[:20])}" if wasm_tools else "")
    return f"unknown tool {name!r}", did_you_mean(name, known, fallback=listed)
