"""What each console page shows, read from the ``Engine`` facade only (like the API's routes).

One function per page returns the template's context (plain dicts and
lists): ``overview``, ``agent``, ``rollout``, ``applies``, ``memory``.
HEALTH is ``caxton.rules.agent_health.live`` (the words of ``caxton agents
list``); SYNC is what the reconcile loop last reported to this engine (its
board's view; ``-`` without one). Specs are shown with secrets redacted
(``caxton.rules.redact``). A rollout's charts come from its time series
(``Engine.rollout_series``), or from its analysis measurements once the
engine no longer holds them. Called by ``caxton.engine.http.ui``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from caxton.engine.ui import charts
from caxton.errors import NotFound
from caxton.rules import agent_health, redact
from caxton.spec.identity import agent_id
from caxton.spec.state import CONFIG_STATES, SERVING_STATE, WASM_STATES, AgentState

if TYPE_CHECKING:
    from caxton.engine.core import Engine

#: The states of each kind in the order the state machine walks them (Failed last).
STATES = {"config": CONFIG_STATES, "wasm": WASM_STATES}
RECENT_APPLIES = 5
ROLLOUT_ACTIVE = frozenset({"running", "paused"})


def overview(engine: Engine, board: dict[str, Any]) -> dict[str, Any]:
    """Engine health, every agent with SYNC and HEALTH, rollouts in flight, the last applies, the loop."""
    health = engine.health_detailed()
    synced = sync_by_agent(board)
    snapshot = engine.snapshot(specs=False)
    rows = [_agent_row(agent, synced.get(agent.id, {})) for agent in snapshot.agents]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["health"]] = counts.get(row["health"], 0) + 1
    return {
        "health": health, "serial": snapshot.serial, "agents": rows, "health_counts": sorted(counts.items()),
        "rollouts": [row for row in rows if row["rollout"] is not None],
        "applies": engine.recent_applies(RECENT_APPLIES)["applies"],
        "reconcile": _loop(board),
    }


def _agent_row(agent: AgentState, loop: dict[str, Any]) -> dict[str, Any]:
    health, reason = agent_health.live(agent)
    if loop.get("health") == agent_health.DEGRADED and health == agent_health.HEALTHY:
        health, reason = agent_health.DEGRADED, str(loop.get("reason") or "")
    return {"id": agent.id, "name": agent.name, "kind": agent.kind, "version": agent.version, "state": agent.state,
            "revision": agent.revision, "traffic": agent.traffic, "sync": loop.get("sync", "-"), "health": health,
            "reason": reason, "rollout": agent.rollout.model_dump(mode="json") if agent.rollout else None,
            "git_commit": agent.git_commit}


def sync_by_agent(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The reconcile loop's rows by agent id, when one loop reports one engine (this one) and runs."""
    report = board.get("status") or {}
    engines = report.get("engines") or []
    if report.get("state") == "stopped" or len(engines) != 1:
        return {}
    return {row["id"]: row for row in engines[0].get("agents") or []}


def _loop(board: dict[str, Any]) -> dict[str, Any]:
    report = board.get("status") or {}
    engines = report.get("engines") or [{}]
    return {"reported": bool(board.get("reported")), "reported_at": board.get("reported_at"),
            "state": report.get("state", "-"), "revision": report.get("revision") or report.get("commit"),
            "outcome": engines[0].get("outcome"), "next_attempt_at": report.get("next_attempt_at"),
            "last_error": report.get("last_error")}


def agent(engine: Engine, name: str) -> dict[str, Any]:
    """One agent: state machine position, traffic, revisions with outcomes, events, logs, redacted spec."""
    detail = engine.agent(name)
    state = AgentState.model_validate({k: v for k, v in detail.items() if k in AgentState.model_fields})
    health, reason = agent_health.live(state)
    kind = detail["kind"]
    return {
        "agent": detail, "health": health, "reason": reason,
        "states": [{"name": s, "current": s == detail["state"], "serving": s == SERVING_STATE.get(kind)}
                   for s in STATES.get(kind, ())],
        "history": engine.revisions(name)["revisions"],
        "logs": engine.agent_logs(name, 50)["lines"][-50:],
        "spec": redact.redacted(detail["spec"]),
        "rollout_active": bool(detail.get("rollout")),
    }


def rollout(engine: Engine, name: str) -> dict[str, Any]:
    """The agent's latest rollout (steps, weights, measurements, charts) and the ones before it."""
    found = engine.rollout_status(name, 5)["rollouts"]
    latest = found[0] if found else None
    return {
        "name": agent_id(name), "rollout": latest, "earlier": found[1:],
        "active": latest is not None and latest["status"] in ROLLOUT_ACTIVE,
        "steps": _steps(latest) if latest else [],
        "measurements": list(reversed(latest["measurements"][-30:])) if latest else [],
        "charts": _charts(engine, latest) if latest else [],
    }


def _charts(engine: Engine, latest: dict[str, Any]) -> list[charts.Chart]:
    """The rollout's time series per revision when the engine still has them, else its measurements."""
    try:
        series = engine.rollout_series(latest["agent_id"])
    except NotFound:
        series = None
    if series is not None and series["rollout_id"] == latest["id"]:
        return series_charts(series, (latest.get("spec") or {}).get("analysis") or {})
    return rollout_charts(latest)


def series_charts(series: dict[str, Any], analysis: dict[str, Any]) -> list[charts.Chart]:
    """Request rate, error rate and p95 latency of each revision, per time bucket over the rollout (a step
    line: each bucket's value held over it)."""
    def lines(field: str) -> list[charts.Series]:
        return [charts.Series(f"revision {rev['revision']} ({rev['role']})",
                              charts.steps([(p["t_s"], float(p[field])) for p in rev["points"]
                                            if p.get(field) is not None], series["bucket_s"]),
                              "series-stable" if rev["role"] == "stable" else "series-candidate", dots=False)
                for rev in series["revisions"]]

    return [
        charts.line_chart("Request rate", "req/s", lines("request_rate")),
        charts.line_chart("Error rate", "%", lines("error_rate"), analysis.get("max_error_rate")),
        charts.line_chart("p95 latency", "ms", lines("p95_latency_ms"), analysis.get("max_p95_latency_ms")),
    ]


def _steps(found: dict[str, Any]) -> list[dict[str, Any]]:
    """Each step with whether it is done, current, failed (where a rollout that ended short stopped) or to come.

    ``step`` is the 0-based index of the step the rollout is at (or ended at).
    """
    at, status = found["step"], found["status"]

    def phase(index: int) -> str:
        if index < at or status == "succeeded":
            return "done"
        if index > at:
            return "todo"
        return "current" if status in ROLLOUT_ACTIVE else ("failed" if status in ("rolled_back", "failed") else "todo")

    return [{"number": i + 1, "label": label, "phase": phase(i)} for i, label in enumerate(found["steps"])]


def rollout_charts(found: dict[str, Any]) -> list[charts.Chart]:
    """Request count, error rate and p95 per revision over the rollout, from its analysis measurements
    (the candidate's value and the stable revision's baseline at each check): for a rollout whose
    series the engine no longer holds (they live in memory, for each agent's last rollout)."""
    start = charts.parse(found["started_at"])
    spec = (found.get("spec") or {}).get("analysis") or {}
    stable, candidate = f"revision {found['stable_revision']} (stable)", f"revision {found['candidate_revision']}"

    def series(metric: str, field: str, label: str, css: str) -> charts.Series:
        points = [(charts.seconds(m["at"], start), float(m[field])) for m in found["measurements"]
                  if m["metric"] == metric and m.get(field) is not None]
        return charts.Series(label, points, css)

    made = [
        charts.line_chart("Requests in the analysis window", "", [
            series("error_rate", "requests", candidate, "series-candidate")]),
        charts.line_chart("Error rate", "%", [series("error_rate", "baseline", stable, "series-stable"),
                                              series("error_rate", "value", candidate, "series-candidate")],
                          spec.get("max_error_rate")),
    ]
    if any(m["metric"] == "p95_latency_ms" for m in found["measurements"]) or spec.get("max_p95_latency_ms"):
        made.append(charts.line_chart("p95 latency", "ms", [
            series("p95_latency_ms", "baseline", stable, "series-stable"),
            series("p95_latency_ms", "value", candidate, "series-candidate")], spec.get("max_p95_latency_ms")))
    return made


def applies(engine: Engine, limit: int = 50) -> dict[str, Any]:
    """The most recent applies, newest first, each change with its outcome."""
    return {"applies": engine.recent_applies(limit)["applies"]}


def memory(engine: Engine, scope: str | None, query: str | None) -> dict[str, Any]:
    """A scope's entities (or the hits of a search) and the relations between them."""
    from caxton.engine.http.memory import memory_of

    service = memory_of(engine)
    scopes = [scope] if scope else None
    if query:
        hits = service.search(query, 20, None, scopes=scopes)
        entities = [{**hit.entity.to_dict(), "similarity": round(hit.similarity, 3)} for hit in hits]
    else:
        entities = [e.to_dict() for e in service.list_entities(scopes=scopes, limit=100)]
    names = {e["id"]: e["name"] for e in entities}
    relations = [
        {**r.to_dict(), "from_name": names[r.from_id], "to_name": names[r.to_id]}
        for r in service.relations() if r.from_id in names and r.to_id in names
    ]
    return {"entities": entities, "relations": relations, "scope": scope or "", "query": query or "",
            "stats": service.stats()}
