"""Markdown rendering of a plan, for pull-request comments and GitHub job summaries.

``caxton plan --output markdown`` (and ``caxton show PLAN --output markdown``) print
this: a heading, the summary line, one table row per change (action, version,
strategy, reason), each change's field-level diff in a ``<details>`` block with a
fenced ``diff``, the rollouts left in flight, warnings, and where the plan was
made. Pure, like ``caxton.planning.render`` (the text form), whose summary line
and version arrows it shares. Values are already redacted in the plan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from caxton.planning import render
from caxton.spec.diagnostics import Diagnostic
from caxton.spec.plan import SYMBOLS, AgentChange, FieldChange, Plan

HEADING = "### Caxton plan"
_MAX_VALUE = 200


def render_markdown(plan: Plan, warnings: Sequence[Diagnostic] = ()) -> str:
    """The whole plan as GitHub-flavoured markdown; ``warnings``: the desired state's, shown in a list."""
    lines = [HEADING, "", f"**{render.summary_line(plan)}**", ""]
    actionable = plan.actionable()
    if actionable:
        lines += _table(actionable) + [""]
        lines += [line for change in actionable if _has_detail(change) for line in _details(change)]
    flying = plan.in_flight()
    if flying:
        lines += ["Rollouts in flight to the desired version (left as they are):", ""]
        lines += [f"- `{change.id}`: {cell(change.reason)}" for change in flying] + [""]
    lines += _warnings(plan, warnings)
    lines.append(_footer(plan))
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    """``text`` safe inside a table cell or a list item: one line, no HTML, no column breaks."""
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def _table(changes: Sequence[AgentChange]) -> list[str]:
    rows = ["| | Agent | Kind | Action | Version | Strategy | Reason |",
            "|:-:|---|---|---|---|---|---|"]
    for change in changes:
        rows.append(f"| `{SYMBOLS[change.action]}` | `{change.id}` | {change.kind} | {change.action} | "
                    f"{cell(render.version_text(change))} | {change.strategy} | {cell(change.reason)} |")
    return rows


def _has_detail(change: AgentChange) -> bool:
    return bool(change.changes) or (change.action == "create" and change.module_after is not None)


def _details(change: AgentChange) -> list[str]:
    body = [f"{SYMBOLS[change.action].strip()} agent \"{change.id}\" ({change.kind}) {render.version_text(change)}"
            .rstrip()]
    if change.action == "create" and change.module_after:
        body.append(f"+ (module) = {change.module_after[:12]}")
    body += [line for field in change.changes for line in _field_lines(field)]
    where = f" ({cell(change.file)})" if change.file else ""
    summary = f"<code>{cell(change.id)}</code> {render.VERBS[change.action]}{where}"
    return ["<details>", f"<summary>{summary}</summary>", "", *_fenced("diff", body), "", "</details>", ""]


def _field_lines(change: FieldChange) -> list[str]:
    """Diff lines: ``+`` added, ``-`` removed, a change as its before (-) and after (+) lines."""
    if change.op == "add":
        return [f"+ {change.path} = {_value(change.after)}"]
    if change.op == "remove":
        return [f"- {change.path} = {_value(change.before)}"]
    body = render.text_diff(change)
    if body is not None:
        return [f"~ {change.path}:", *body]
    return [f"- {change.path} = {_value(change.before)}", f"+ {change.path} = {_value(change.after)}"]


def _value(value: Any) -> str:
    return render.value_text(value, _MAX_VALUE)


def _fenced(language: str, body: list[str]) -> list[str]:
    """A code fence longer than any run of backticks in ``body`` (so no value can close it early)."""
    longest = max((len(run) for line in body for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, *body, fence]


def _warnings(plan: Plan, warnings: Sequence[Diagnostic]) -> list[str]:
    items = [f"- `{cell(d.location)}`: {cell(d.message)} ({d.code})" for d in warnings]
    drifted = [change.id for change in plan.actionable() if change.drift]
    if drifted:
        names = ", ".join(f"`{name}`" for name in drifted)
        items.append(f"- drift: {names} changed on the engine outside git; apply puts the desired state back")
    if plan.targets is not None:
        items.append(f"- targeted (`--target`): {', '.join(f'`{t}`' for t in plan.targets)}; "
                     "other agents are not planned")
    return ["**Warnings**", "", *items, ""] if items else []


def _footer(plan: Plan) -> str:
    commit = f" @ `{plan.source.git_commit[:12]}`" if plan.source.git_commit else ""
    return (f"<sub>Desired state `{cell(plan.source.path)}`{commit} (`{plan.desired_digest[:19]}`); "
            f"engine {cell(plan.engine_url)} serial {plan.engine_serial}</sub>")
