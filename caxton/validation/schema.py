"""Schema checks: pydantic validation errors turned into positioned diagnostics.

Maps each pydantic error to a catalogue code (missing field, unknown field with
"did you mean", wrong type, bad name/version/unit/choice) at the file line of
the offending key or value. Called by ``caxton.validation.pipeline`` for agent
files and ``caxton.yaml``. Pure.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from caxton.rules import models
from caxton.rules.suggest import did_you_mean, one_of
from caxton.spec import project, refused, units
from caxton.spec.diagnostics import Diagnostic
from caxton.validation.documents import Document, Path_, diagnostic

_TYPE_ERRORS = {
    "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "string_type",
    "bool_type", "bool_parsing", "list_type", "dict_type", "model_type", "model_attributes_type",
    "tuple_type", "set_type", "none_required",
}
_EXAMPLES = {
    "name": "add 'name: my-agent' (letters, digits, '-' or '_')",
    "version": "add 'version: \"1.0.0\"' (a semantic version, quoted in YAML)",
    "system_prompt": "add 'system_prompt: |' followed by the agent's instructions",
    "module": "add 'module: ../wasm/my-agent.wasm' (path relative to this file)",
    "kind": "add 'kind: wasm' for a WASM agent",
}
_NAME_HINT = "start with a letter; then letters, digits, '-' or '_'; at most 63 characters (e.g. data-processor)"
_VERSION_HINT = "use MAJOR.MINOR.PATCH (e.g. \"1.2.0\"); quote it in YAML so it stays a string"


def validate_model(doc: Document, model: type[BaseModel], data: dict[str, Any]) -> tuple[Any, list[Diagnostic]]:
    """Validate ``data`` into ``model``; return (instance or None, diagnostics)."""
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        found = [to_diagnostic(doc, model, detail) for detail in error.errors(include_url=False)]
        return None, found


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def to_diagnostic(doc: Document, model: type[BaseModel], detail: ErrorDetails) -> Diagnostic:
    """One pydantic error -> one diagnostic."""
    loc: Path_ = tuple(detail["loc"])
    kind = detail["type"]
    where = dotted(loc)
    msg = str(detail["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        field = str(loc[-1])
        parent = f" in {dotted(loc[:-1])}" if len(loc) > 1 else ""
        return diagnostic("CX201", doc.file, f"missing required field {field!r}{parent}",
                          doc.key_pos(loc[:-1]), hint=_EXAMPLES.get(field))
    if kind == "extra_forbidden":
        return _unknown_field(doc, model, loc)
    if not loc:  # a check across sections (the message names the keys)
        return diagnostic("CX204", doc.file, msg, doc.key_pos(loc))
    value = _show(detail.get("input"))
    pos = doc.value_pos(loc)
    if loc == ("name",):
        return diagnostic("CX205", doc.file, f"name {value} is not a valid agent name", pos, hint=_NAME_HINT)
    if loc == ("version",):
        return diagnostic("CX206", doc.file, f"version {value} is not a semantic version", pos, hint=_VERSION_HINT)
    if len(loc) == 2 and loc[0] == "capabilities" and kind == "string_pattern_mismatch":
        return diagnostic("CX207", doc.file, f"capability {value} is not valid", pos,
                          hint="lower-case words joined by '-', '_', '.' or ':' (e.g. data-processing)")
    if loc == ("sha256",) and kind == "string_pattern_mismatch":
        return diagnostic("CX204", doc.file, f"sha256 {value} is not a sha256 digest", pos,
                          hint="64 lower-case hex digits, e.g. the output of 'sha256sum module.wasm'")
    if len(loc) == 3 and loc[0] == "mcp_servers" and loc[2] == "url" and kind == "value_error":
        return diagnostic("CX325", doc.file, f"{where} {msg}", pos,  # the value may hold credentials: not echoed
                          hint="write the server's streamable HTTP endpoint, e.g. https://mcp.example.com/mcp")
    if len(loc) >= 3 and loc[0] == "mcp_servers" and loc[2] == "headers":  # never echo what may be a secret
        return diagnostic("CX204", doc.file, f"{where}: {msg}", pos,
                          hint="e.g. headers: {Authorization: {env: MCP_TOKEN}} (docs/tools.md)")
    if kind == "literal_error":
        return _bad_choice(doc, loc, detail, value)
    info = models.field_at(model, loc)
    if info is not None and _is_unit(info) and kind == "value_error":
        return diagnostic("CX209", doc.file, f"{where}: {msg}", pos, hint=_unit_hint(info))
    if kind in _TYPE_ERRORS:
        return diagnostic("CX203", doc.file, f"{where}: {msg} (got {value})", pos, hint=_type_hint(kind))
    return diagnostic("CX204", doc.file, f"{where}: {msg} (got {value})", pos)


def _unknown_field(doc: Document, model: type[BaseModel], loc: Path_) -> Diagnostic:
    refusal = refused.advice(loc) if model is project.ProjectConfig else None
    if refusal is not None:  # a key Caxton knows but does not build: say what to use instead
        return diagnostic("CX202", doc.file, f"{dotted(loc)}: {refusal.split(';')[0]}", doc.key_pos(loc),
                          hint=refusal)
    owner = models.model_at(model, loc[:-1])
    names = models.field_names(owner) if owner is not None else []
    field = str(loc[-1])
    parent = f" in {dotted(loc[:-1])}" if len(loc) > 1 else ""
    hint = did_you_mean(field, names, fallback=f"known fields{parent}: {', '.join(sorted(names))}" if names else None)
    return diagnostic("CX202", doc.file, f"unknown field {field!r}{parent}", doc.key_pos(loc), hint=hint)


def _bad_choice(doc: Document, loc: Path_, detail: ErrorDetails, value: str) -> Diagnostic:
    expected = str((detail.get("ctx") or {}).get("expected", ""))
    choices = re.findall(r"'([^']*)'", expected)
    raw = detail.get("input")
    hint = did_you_mean(str(raw), choices, fallback=one_of(choices)) if choices else None
    return diagnostic("CX211", doc.file, f"{dotted(loc)}: {value} is not allowed (expected {expected})",
                      doc.value_pos(loc), hint=hint)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_hint(kind: str) -> str | None:
    if kind.startswith("string"):
        return "quote the value to make it a string"
    if kind.startswith("list"):
        return "write a list: one '- item' per line, or [a, b]"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "write a mapping of 'key: value' lines, indented under the field"
    return None


def _unit_hint(field: FieldInfo) -> str:
    if _has_validator(field, units.parse_size):
        return "sizes are bytes or a number with B, KB, MB, GB, KiB, MiB or GiB (e.g. 50MB)"
    return "durations are seconds or a number with ms, s, m, h or d (e.g. 30s)"


def _has_validator(field: FieldInfo, func: Any) -> bool:
    return any(getattr(meta, "func", None) is func for meta in field.metadata)


def _is_unit(field: FieldInfo) -> bool:
    return _has_validator(field, units.parse_size) or _has_validator(field, units.parse_duration)
