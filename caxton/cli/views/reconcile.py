"""Views of ``caxton reconcile``: the loop's status with each agent's SYNC/HEALTH, a pass's outcome, a trigger.

Pure: the board's view (its JSON) plus the engine's clock in, lines out. The loop's ``next attempt``
is shown relative to ``now``; a loop whose next attempt is well past without a new report is shown
``lost`` (it stopped without saying so), never as a live loop with an attempt in the past.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from caxton.cli.views.registry import Note, text_view
from caxton.cli.views.text import short, table

if TYPE_CHECKING:
    from caxton.reconcile.passes import PassOutcome
    from caxton.spec.api import BoardView, TriggerAck

#: A live loop reports when its next pass starts; this long past it without a report, it is lost.
LOST_AFTER = 15.0
NO_LOOP = "No reconcile loop has reported to this engine (start one: caxton reconcile --watch)."


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def loop_state(report: dict[str, Any], now: datetime) -> tuple[str, str]:
    """The loop's state as a word and its next attempt as text ("in 12s (…Z)", "due now", "-")."""
    state = str(report.get("state") or "-")
    due = parse_time(report.get("next_attempt_at"))
    if state in ("stopped", "applying", "starting") or due is None:
        return state, "-" if state != "applying" else "after this pass"
    late = (now - due).total_seconds()
    if late > LOST_AFTER:
        return "lost", f"was due {report.get('next_attempt_at')}: no report since (is the loop still running?)"
    if late >= 0:
        return state, "due now"
    return state, f"in {_seconds(-late)} ({report.get('next_attempt_at')})"


def _seconds(value: float) -> str:
    value = round(value)
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


@text_view("BoardView")
def board_text(view: BoardView) -> list[str]:
    from caxton.spec.api import wire

    return status_lines(wire(view))


def status_lines(view: dict[str, Any]) -> list[str]:
    """``caxton reconcile status``: the loop, then per engine one row per agent."""
    report = view.get("status")
    if not report:
        return [NO_LOOP]
    now = parse_time(view.get("now")) or datetime.now(UTC)
    state, next_attempt = loop_state(report, now)
    busy = [f"{row['name']} {str(row['health']).lower()}" for engine in report.get("engines") or []
            for row in engine.get("agents") or [] if row.get("health") in ("Progressing", "Paused")]
    detail = {"waiting": f" ({', '.join(busy) or 'applies in flight'}; watched, not waited on)",
              "error": " (retrying with backoff)" if not report.get("held") else " (held until a new revision)",
              "lost": f" (last reported state: {report.get('state')})"}.get(state, "")
    last = report.get("last_outcome")
    rows = [
        ("source", report.get("source")), ("state", state + detail),
        ("last seen commit", report.get("last_seen_commit")), ("last applied commit", report.get("last_applied_commit")),
        ("last outcome", f"{last}: {report.get('last_message')}" if last else None),
        ("last run", report.get("last_run_at")), ("last success", report.get("last_success_at")),
        ("last error", report.get("last_error")), ("retries", report.get("retries")),
        ("next attempt", next_attempt), ("reported", view.get("reported_at")),
        ("loop", f"{report.get('holder')} (id {report.get('loop_id')})"),
    ]
    lines = [f"{label + ':':<21}{'-' if value is None else value}" for label, value in rows]
    for engine in report.get("engines") or []:
        applied = f", apply {engine['apply_id']}" if engine.get("apply_id") else ""
        lines += ["", f"engine {engine['engine']}: {engine.get('outcome') or '-'} at {short(engine.get('commit'))}"
                  f"{applied}"]
        lines += agent_table(engine.get("agents") or [])
    from caxton.validation.report import diagnostic_line

    lines += [f"  {diagnostic_line(found)}" for found in report.get("diagnostics") or []]
    return lines


def agent_table(agents: list[dict[str, Any]]) -> list[str]:
    """NAME SYNC HEALTH VERSION DESIRED REASON, one row per agent."""
    if not agents:
        return ["  (no agents yet)"]
    rows = [[a["name"], a["sync"], a["health"], a.get("version") or "-", a.get("desired_version") or "-",
             a.get("reason") or ""] for a in agents]
    return table(["NAME", "SYNC", "HEALTH", "VERSION", "DESIRED", "REASON"], rows)


def sync_by_agent(view: dict[str, Any], engine_url: str) -> dict[str, dict[str, Any]] | None:
    """The live loop's rows for ``engine_url`` by agent id; None when no live loop reports to it.

    With one engine in the report its rows are taken whatever URL spelling was used to reach it.
    """
    report = view.get("status")
    if not report or report.get("state") == "stopped":
        return None
    now = parse_time(view.get("now")) or datetime.now(UTC)
    if loop_state(report, now)[0] == "lost":
        return None
    engines = report.get("engines") or []
    chosen = [e for e in engines if e.get("engine", "").rstrip("/") == engine_url.rstrip("/")]
    if not chosen and len(engines) == 1:
        chosen = engines
    if not chosen:
        return None
    return {row["id"]: row for row in chosen[0].get("agents") or []}


@text_view("PassOutcome")
def outcome_text(outcome: PassOutcome) -> Iterator[str]:
    """One line per engine on stdout; the diagnostics of an invalid revision on stderr."""
    from caxton.validation.report import diagnostic_line

    commit = short(outcome.commit or outcome.revision, "(unknown)")
    for result in outcome.engines:
        changes = f": {', '.join(result.changes)}" if result.changes else ""
        yield f"{result.engine}: {result.outcome} at {commit}{changes}"
    if not outcome.engines:
        yield f"{outcome.outcome}: {outcome.message}"
    for found in outcome.diagnostics:
        yield Note(diagnostic_line(found))


def announced(outcome: PassOutcome, first: bool) -> Iterator[str]:
    """What ``caxton up`` says of a pass (``first``: no pass announced before)."""
    commit = short(outcome.commit or outcome.revision, "")
    for result in outcome.engines:
        if result.outcome in ("applied", "progressing"):
            yield f"{result.outcome} {commit}: {', '.join(result.changes) or 'no agent changed'}"
            for row in result.agents:
                if row.health != "Healthy":
                    yield f"  {row.name}: {row.health} {row.reason}"
        elif result.outcome == "in_sync" and first:
            yield f"in sync with {commit}: nothing to apply"
        elif result.outcome != "in_sync":
            yield f"not applied ({result.outcome}): {result.message}"
    if not outcome.engines:
        yield f"not applied ({outcome.outcome}): {outcome.message}"


@text_view("TriggerAck")
def trigger_text(result: TriggerAck) -> Iterator[str]:
    if not result.loop_reported:
        yield Note("note: no reconcile loop has reported to this engine yet")
    yield f"Triggered (trigger #{result.triggers})."
