"""Human rendering of a plan, Terraform style (``+`` create, ``~`` update, ``-`` delete, ``-/+`` replace)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from caxton.spec.plan import SYMBOLS, AgentChange, FieldChange, Plan

VERBS = {
    "create": "will be created",
    "update": "will be updated",
    "replace": "must be replaced",
    "delete": "will be deleted",
}
_OP_SYMBOL = {"add": "+", "remove": "-", "change": "~"}
_MAX_INLINE = 72


def value_text(value: Any, limit: int = _MAX_INLINE) -> str:
    """A field value as JSON on one line, cut to ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def text_diff(change: FieldChange) -> list[str] | None:
    """The unified diff body (``@@``, ``-``, ``+``, context lines) of a multi-line text change, else None."""
    multiline = any(isinstance(v, str) and "\n" in v.strip("\n") for v in (change.before, change.after))
    if change.op != "change" or change.sensitive or not multiline:
        return None
    before = str(change.before or "").splitlines()
    after = str(change.after or "").splitlines()
    return list(difflib.unified_diff(before, after, lineterm="", n=1))[2:]


def _field_lines(change: FieldChange) -> list[str]:
    symbol = _OP_SYMBOL[change.op]
    if change.op == "add":
        return [f"      {symbol} {change.path} = {value_text(change.after)}"]
    if change.op == "remove":
        return [f"      {symbol} {change.path} = {value_text(change.before)}"]
    body = text_diff(change)
    if body is not None:
        return [f"      ~ {change.path}:"] + [f"          {line}" for line in body]
    return [f"      {symbol} {change.path}: {value_text(change.before)} -> {value_text(change.after)}"]


def version_text(change: AgentChange) -> str:
    if change.action == "create":
        return change.version_after or ""
    if change.action == "delete":
        return change.version_before or ""
    if change.version_before != change.version_after:
        return f"{change.version_before} -> {change.version_after}"
    return change.version_after or ""


def _agent_block(change: AgentChange) -> list[str]:
    how = f" ({change.strategy})" if change.action in ("create", "update", "replace") else ""
    drift = " [drift]" if change.drift else ""
    lines = [
        f"  # {change.id} {VERBS[change.action]}{how}: {change.reason}{drift}",
        f"{SYMBOLS[change.action]:>3} agent \"{change.id}\" ({change.kind}) {version_text(change)}".rstrip(),
    ]
    if change.action == "create" and change.module_after:
        lines.append(f"      + (module) = {change.module_after[:12]}")
    lines += [line for field in change.changes for line in _field_lines(field)]
    return lines + [""]


def summary_line(plan: Plan) -> str:
    counts = plan.counts()
    if not plan.has_changes:
        flying = len(plan.in_flight())
        if flying:
            return f"No changes. The engine is rolling out the desired state ({flying} rollout(s) in flight)."
        which = "targeted agents match" if plan.targets is not None else "engine matches"
        return f"No changes. The {which} the desired state."
    text = f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete"
    if counts["replace"]:
        text += f", {counts['replace']} to replace"
    return text + "."


def render_text(plan: Plan) -> str:
    """The whole plan as text (ends with the summary line)."""
    lines: list[str] = []
    actionable = plan.actionable()
    if actionable:
        lines += ["Caxton will perform the following actions:", ""]
        for change in actionable:
            lines += _agent_block(change)
    flying = plan.in_flight()
    if flying:
        lines += ["Rollouts in flight to the desired version (left as they are):"]
        lines += [f"  = {change.id}: {change.reason}" for change in flying] + [""]
    where = plan.source.path + (f" @ {plan.source.git_commit[:12]}" if plan.source.git_commit else "")
    lines.append(f"Desired state: {where} ({plan.desired_digest[:19]}); engine {plan.engine_url} serial {plan.engine_serial}")
    if plan.targets is not None:
        lines.append(f"Targeted (--target): {', '.join(plan.targets)}; other agents are not planned.")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"
