"""Semantic checks of a parsed agent: tools, a WASM tool's schema, parameters, secrets, templates, deprecations.

Runs after the schema check on the raw data and the model. Called by
``caxton.validation.pipeline``. Pure.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from caxton.rules import templates
from caxton.rules.hosts import host_allowed
from caxton.rules.suggest import did_you_mean
from caxton.spec import units
from caxton.spec.agent import check_mcp_url
from caxton.spec.diagnostics import Diagnostic
from caxton.spec.tools import mcp_reference
from caxton.validation.documents import Document, Path_, Pos, diagnostic
from caxton.validation.schema import dotted

#: ``${NAME}``: a value the engine reads from its environment at run time.
ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_SECRET_NAME = re.compile(r"(^|[_\-.])(api_?key|key|token|secret|password|passwd|credentials?)s?($|[_\-.])", re.IGNORECASE)
_DEPRECATED = {
    "memory_scope": ("memory.scope", "move it: memory:\n  scope: <agent|workspace|global>"),
    "conversation_limit": ("resource_limits.max_conversations", "rename it to max_conversations"),
}
_TEMPLATE_FIELDS = ("system_prompt", "user_prompt_template")


def deprecated_fields(doc: Document, data: dict[str, Any]) -> list[Diagnostic]:
    """Warnings for legacy spellings the model still accepts."""
    limits = data.get("resource_limits")
    if not isinstance(limits, dict):
        return []
    return [
        diagnostic("CX210", doc.file, f"resource_limits.{key} is deprecated: use {replacement}",
                   doc.key_pos(("resource_limits", key)), hint=hint)
        for key, (replacement, hint) in _DEPRECATED.items() if key in limits
    ]


def check_agent(doc: Document, data: dict[str, Any]) -> list[Diagnostic]:
    """Every semantic check of one agent that needs no other file.

    Works on the raw data, so these problems are reported even when the
    schema check failed on another field.
    """
    found = _duplicates(doc, "tools", strings(data.get("tools")))
    found += _tool_section(doc, data)
    found += _mcp_tools(doc, data)
    found += _http_without_hosts(doc, data)
    found += _mcp_hosts(doc, data)
    found += _duplicates(doc, "capabilities", strings(data.get("capabilities")))
    parameters = data.get("parameters")
    if isinstance(parameters, dict):
        found += _parameters(doc, ("parameters",), parameters)
    if data.get("kind", "config") == "config":
        for name in _TEMPLATE_FIELDS:
            source = data.get(name)
            if isinstance(source, str) and source:
                found += _template(doc, name, source)
    return found


def strings(value: Any) -> list[str]:
    """A list of strings as written (non-strings are the schema check's business)."""
    return [v if isinstance(v, str) else "" for v in value] if isinstance(value, list) else []


def _tool_section(doc: Document, data: dict[str, Any]) -> list[Diagnostic]:
    """A WASM tool's ``tool.parameters``: a valid JSON Schema (its meta-schema) of an object (CX320).

    Whether each name under ``tools`` exists needs every file: ``caxton.validation.tool_refs``.
    """
    section = data.get("tool")
    parameters = section.get("parameters") if isinstance(section, dict) else None
    if data.get("kind") != "wasm" or not isinstance(parameters, dict):
        return []  # absent, or not a mapping: the schema check's business
    import jsonschema  # only for WASM tools

    where = doc.value_pos(("tool", "parameters"))
    try:
        jsonschema.validators.validator_for(parameters).check_schema(parameters)
    except jsonschema.SchemaError as error:
        path = "/".join(str(p) for p in error.absolute_path) or "(top)"
        return [diagnostic("CX320", doc.file, f"tool.parameters is not a valid JSON Schema: at {path}: "
                           f"{error.message}", where, hint="fix the schema (https://json-schema.org); "
                           "the model's arguments are checked against it before every call")]
    if parameters.get("type") != "object":
        return [diagnostic("CX320", doc.file, "tool.parameters must be an object schema (type: object): a tool "
                           "is called with a JSON object of named arguments", where,
                           hint="type: object, with the arguments under properties")]
    return []


def _mcp_tools(doc: Document, data: dict[str, Any]) -> list[Diagnostic]:
    """Each ``server.tool`` in ``tools``: a declared MCP server (CX323) and one of its ``allowed_tools`` (CX324)."""
    declared = data.get("mcp_servers")
    servers = {s["name"]: strings(s.get("allowed_tools")) for s in declared if isinstance(s, dict)
               and isinstance(s.get("name"), str)} if isinstance(declared, list) else {}
    found = []
    for index, tool in enumerate(strings(data.get("tools"))):
        reference = mcp_reference(tool)
        if reference is None:
            continue
        server, name = reference
        pos = doc.value_pos(("tools", index))
        if server not in servers:
            fallback = (f"declared servers: {', '.join(sorted(servers))}" if servers
                        else "declare it under mcp_servers (name, url, allowed_tools); docs/tools.md")
            found.append(diagnostic("CX323", doc.file, f"tool {tool!r}: no MCP server {server!r} is declared", pos,
                                    hint=did_you_mean(server, servers, fallback=fallback)))
        elif name not in servers[server]:
            allowed = servers[server]
            found.append(diagnostic(
                "CX324", doc.file, f"tool {tool!r}: {name!r} is not in the allowed_tools of MCP server {server!r}",
                pos, hint=did_you_mean(name, allowed, fallback=f"add it to mcp_servers[{server}].allowed_tools "
                                                                 f"(allowed: {', '.join(allowed) or 'none'})")))
    return found


def _http_without_hosts(doc: Document, data: dict[str, Any]) -> list[Diagnostic]:
    """``http_client`` on a config agent with no ``security_policy.allowed_hosts``: every call would be refused."""
    tools = strings(data.get("tools"))
    if data.get("kind", "config") != "config" or "http_client" not in tools:
        return []
    policy = data.get("security_policy")
    if isinstance(policy, dict) and policy.get("allowed_hosts"):
        return []
    return [diagnostic("CX310", doc.file, "http_client is listed but no host is allowed: every call will be refused",
                       doc.value_pos(("tools", tools.index("http_client"))),
                       hint="list the hosts it may call under security_policy.allowed_hosts (docs/tools.md)")]


def _mcp_hosts(doc: Document, data: dict[str, Any]) -> list[Diagnostic]:
    """Each MCP server's ``url`` on ``security_policy.allowed_hosts``, matched as http_client's URLs are (CX326).

    A URL that is no valid MCP URL is CX325 (the schema check) and not looked at here.
    """
    declared = data.get("mcp_servers")
    if data.get("kind", "config") != "config" or not isinstance(declared, list):
        return []
    policy = data.get("security_policy")
    allowed = strings(policy.get("allowed_hosts")) if isinstance(policy, dict) else []
    found = []
    for index, server in enumerate(declared):
        url = server.get("url") if isinstance(server, dict) else None
        if not isinstance(url, str) or not _valid_mcp_url(url) or host_allowed(url, allowed):
            continue
        parts = urlsplit(url)
        host = parts.netloc.lower()
        name = server.get("name") if isinstance(server.get("name"), str) else str(index)
        found.append(diagnostic(
            "CX326", doc.file, f"MCP server {name!r}: its host {host} is not on security_policy.allowed_hosts "
            "(every call to it would be refused)", doc.value_pos(("mcp_servers", index, "url")),
            hint=f"add {host} to security_policy.allowed_hosts{_any_port(parts.netloc.lower(), parts.hostname)}; "
                 "docs/tools.md"))
    return found


def _any_port(netloc: str, hostname: str | None) -> str:
    bare = f"[{hostname}]" if hostname and ":" in hostname else hostname
    return f" (or {bare}: any port)" if bare and bare != netloc else ""


def _valid_mcp_url(url: str) -> bool:
    try:
        check_mcp_url(url)
    except ValueError:
        return False  # CX325, from the schema check
    return True


def _duplicates(doc: Document, field: str, items: list[str]) -> list[Diagnostic]:
    seen: set[str] = set()
    found = []
    for index, item in enumerate(items):
        if item and item in seen:
            found.append(diagnostic("CX308", doc.file, f"{field}: {item!r} is listed twice",
                                    doc.value_pos((field, index)), hint="remove the repeated entry"))
        seen.add(item)
    return found


def _parameters(doc: Document, path: Path_, value: Any) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _parameter(doc, (*path, str(key)), str(key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _parameters(doc, (*path, index), item)
    return found


#: Integers a parameter may hold: what a signed 64-bit integer (SQLite, most JSON readers' int64) holds.
_INT64 = range(-(2**63), 2**63)


def _parameter(doc: Document, path: Path_, name: str, value: Any) -> list[Diagnostic]:
    if isinstance(value, (dict, list)):
        return _parameters(doc, path, value)
    if isinstance(value, float) and not math.isfinite(value):
        return [diagnostic("CX204", doc.file, f"{dotted(path)}: {value} is not a finite number",
                           doc.value_pos(path), hint="JSON cannot carry NaN or Infinity: quote it to pass a string")]
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        return [diagnostic("CX204", doc.file, f"{dotted(path)}: {value} is outside the 64-bit integer range",
                           doc.value_pos(path), hint="quote it to pass the digits as a string")]
    if not isinstance(value, str):
        return []
    if _SECRET_NAME.search(name) and value and not ENV_REFERENCE.match(value):
        return [diagnostic("CX304", doc.file, f"{dotted(path)} looks like a secret with a literal value",
                           doc.value_pos(path), hint=f"reference an environment variable instead: "
                           f"{name}: \"${{{name.upper().replace('-', '_')}}}\"")]
    if units.looks_like_quantity(value) and not (units.is_size(value) or units.is_duration(value)):
        return [diagnostic("CX303", doc.file, f"{dotted(path)}: {value!r} has an unknown unit",
                           doc.value_pos(path),
                           hint="sizes use B, KB, MB, GB, KiB, MiB, GiB; durations use ms, s, m, h, d")]
    return []


def _template(doc: Document, field: str, source: str) -> list[Diagnostic]:
    found = []
    lines = source.split("\n")
    for problem in templates.check_template(source):
        pos = Pos(doc.text_line((field,)) + problem.line - 1, 1)
        if problem.kind == "syntax":
            found.append(diagnostic("CX305", doc.file, f"{field}: template syntax error: {problem.message}", pos,
                                    hint="check the {{ }} and {% %} pairs on this line"))
        elif problem.kind == "variable":
            hint = did_you_mean(problem.name or "", templates.TEMPLATE_VARIABLES,
                                fallback=f"available variables: {', '.join(templates.TEMPLATE_VARIABLES)}")
            found.append(diagnostic("CX306", doc.file, f"{field}: {problem.message}", pos, hint=hint))
        elif problem.kind == "unsafe":
            found.append(diagnostic("CX309", doc.file, f"{field}: {problem.message}",
                                    doc.text_pos((field,), problem.line, problem.column, lines[problem.line - 1]),
                                    hint=templates.UNSAFE_HINT))
        else:
            found.append(diagnostic("CX307", doc.file, f"{field}: {problem.message}", pos,
                                    hint=did_you_mean(problem.name or "", templates.known_filters())))
    return found
