"""Render diagnostics as text, JSON, GitHub annotations or SARIF 2.1.0.

Pure functions from a ``Report`` to a string; ``caxton validate`` prints the
result to stdout (the summary line goes to stderr). The JSON shape is a
documented contract (docs/validation.md): change it only by bumping
``JSON_VERSION``.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from caxton import __version__
from caxton.spec.diagnostics import Diagnostic, Severity
from caxton.validation import codes

JSON_VERSION = 1
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


@dataclass(frozen=True)
class AgentLine:
    id: str
    name: str
    kind: str
    version: str
    file: str
    digest: str


@dataclass(frozen=True)
class SourceLine:
    source: str
    root: str
    digest: str
    git_commit: str | None


@dataclass(frozen=True)
class Report:
    """What one ``caxton validate`` run found (paths already relative to the cwd)."""

    diagnostics: tuple[Diagnostic, ...]
    strict: bool = False
    agents: tuple[AgentLine, ...] = ()
    sources: tuple[SourceLine, ...] = field(default_factory=tuple)

    def counts(self) -> Counter[str]:
        return Counter(d.severity.value for d in self.diagnostics)

    @property
    def valid(self) -> bool:
        blocking = {Severity.ERROR, Severity.WARNING} if self.strict else {Severity.ERROR}
        return not any(d.severity in blocking for d in self.diagnostics)


def strictly(diagnostics: tuple[Diagnostic, ...]) -> tuple[Diagnostic, ...]:
    """``--strict``: warnings become errors."""
    return tuple(d.model_copy(update={"severity": Severity.ERROR}) if d.severity is Severity.WARNING else d
                 for d in diagnostics)


def summary(report: Report) -> str:
    counts = report.counts()
    verdict = "valid" if report.valid else "invalid"
    return (f"{verdict}: {len(report.agents)} agent(s), {counts['error']} error(s), "
            f"{counts['warning']} warning(s), {counts['info']} note(s)")


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _unsafe(char: str) -> bool:
    """Control, format (bidi overrides), surrogate and unassigned characters, and line separators."""
    return unicodedata.category(char)[0] == "C" or char in "\u2028\u2029"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` kept on one line, escaped as Python's repr does when it holds an unsafe character
    (a newline as ``\\n``, ESC as ``\\x1b``, a bidi override as ``\\u202e``; then a backslash is
    ``\\\\`` so the escapes stay unambiguous). Text without one is unchanged. ``keep_newlines``:
    for messages and hints, whose authored line breaks stay line breaks."""
    if not any(_unsafe(c) and not (keep_newlines and c == "\n") for c in text):
        return text
    return "".join(c if keep_newlines and c == "\n" else _ESCAPES.get(c) or (
        c.encode("unicode_escape", "backslashreplace").decode("ascii") if _unsafe(c) else c) for c in text)


def diagnostic_line(found: dict[str, Any], *, with_hint: bool = False) -> str:
    """One diagnostic given as JSON (a reconcile status, a pass outcome) on one line, file name escaped."""
    where = ":".join(printable(str(found[k])) for k in ("file", "line", "column") if found.get(k) is not None)
    hint = f" (hint: {printable(str(found['hint']))})" if with_hint and found.get("hint") else ""
    return f"{where}: {found.get('severity')} {found.get('code')}: {printable(str(found.get('message')))}{hint}"


def render_text(report: Report) -> str:
    """One line per diagnostic, then its hint: a file name is escaped with :func:`printable` (a
    file named ``a\\n::error ...`` cannot start a line of its own), messages and hints keep only
    their line breaks."""
    lines = []
    for d in report.diagnostics:
        where = printable(d.file) + "".join(f":{n}" for n in (d.line, d.column) if n is not None)
        lines.append(f"{where}: {d.severity.value} {d.code}: {printable(d.message, keep_newlines=True)}")
        if d.hint:
            lines.append(f"  hint: {printable(d.hint, keep_newlines=True)}")
    return "".join(line + "\n" for line in lines)


def render_json(report: Report) -> str:
    counts = report.counts()
    document: dict[str, Any] = {
        "version": JSON_VERSION,
        "valid": report.valid,
        "strict": report.strict,
        "summary": {"agents": len(report.agents), "errors": counts["error"], "warnings": counts["warning"],
                    "infos": counts["info"]},
        "diagnostics": [_diagnostic_json(d) for d in report.diagnostics],
        "agents": [vars(a) for a in report.agents],
        "sources": [vars(s) for s in report.sources],
    }
    return json.dumps(document, indent=2) + "\n"


def _diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    code = codes.BY_ID.get(d.code)
    return {"code": d.code, "title": code.title if code else None, "severity": d.severity.value, "file": d.file,
            "line": d.line, "column": d.column, "message": d.message, "hint": d.hint}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report) -> str:
    lines = []
    for d in report.diagnostics:
        props = [f"file={_escape_property(d.file)}"]
        if d.line is not None:
            props.append(f"line={d.line}")
        if d.column is not None:
            props.append(f"col={d.column}")
        props.append(f"title={d.code}")
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        lines.append(f"::{_GITHUB_LEVEL[d.severity]} {','.join(props)}::{_escape_data(message)}")
    return "".join(line + "\n" for line in lines)


def render_sarif(report: Report) -> str:
    index = {code.id: i for i, code in enumerate(codes.CATALOGUE)}
    rules = [{"id": c.id, "name": c.title, "shortDescription": {"text": c.summary},
              "defaultConfiguration": {"level": _SARIF_LEVEL[c.severity]},
              "helpUri": f"https://caxton.dev/docs/validation#{c.id.lower()}"} for c in codes.CATALOGUE]
    results = [_sarif_result(d, index.get(d.code)) for d in report.diagnostics]
    run = {"tool": {"driver": {"name": "caxton", "version": __version__, "semanticVersion": __version__,
                               "informationUri": "https://caxton.dev", "rules": rules}},
           "columnKind": "unicodeCodePoints", "results": results}
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"


def _uri(path: str) -> str:
    """A relative URI reference (RFC 3986) for a file path: bytes outside the safe set percent-encoded."""
    from urllib.parse import quote

    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def _sarif_result(d: Diagnostic, rule_index: int | None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(d.file)}}
    if d.line is not None:
        region: dict[str, int] = {"startLine": d.line}
        if d.column is not None:
            region["startColumn"] = d.column
        physical["region"] = region
    result: dict[str, Any] = {
        "ruleId": d.code,
        "level": _SARIF_LEVEL[d.severity],
        "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
        "locations": [{"physicalLocation": physical}],
    }
    if rule_index is not None:
        result["ruleIndex"] = rule_index
    return result


RENDERERS = {"text": render_text, "json": render_json, "github": render_github, "sarif": render_sarif}
