"""SYNC/HEALTH derivation (pure, over the real planner's plan), the loop's hold on rolled-back versions,
and the text of `caxton reconcile status` / the agents table (snapshots)."""

from __future__ import annotations

from typing import Any

from syrupy.assertion import SnapshotAssertion

from caxton.cli.views import agents as agent_views
from caxton.cli.views import reconcile as sync_view
from caxton.desired.model import DesiredAgent, DesiredState
from caxton.planning import build
from caxton.reconcile import health
from caxton.reconcile.health import Held
from caxton.reconcile.tracking import Tracker
from caxton.spec.api import AgentSummary, ChangeResult
from caxton.spec.agent import parse_agent
from caxton.spec.digest import spec_digest, state_digest
from caxton.spec.plan import Plan, PlanSource
from caxton.spec.state import AgentState, RolloutState, StateSnapshot

REQUEST = build.PlanRequest(plan_id="p", created_at="2026-11-26T00:00:00Z", engine_url="http://127.0.0.1:8080",
                            source=PlanSource(path="agents"))


def agent(name: str, version: str) -> DesiredAgent:
    spec = parse_agent({"name": name, "version": version, "system_prompt": "You help.",
                        "rollout": {"strategy": "canary", "steps": [10, 50, 100]}})
    return DesiredAgent.of(spec=spec, file=f"agents/{name}.md", module_bytes=None, module_sha256=None,
                           digest=spec_digest(spec.model_dump(mode="json")))


def desired(*agents: DesiredAgent) -> DesiredState:
    return DesiredState(root="/repo", agents=tuple(sorted(agents, key=lambda a: a.id)), diagnostics=(),
                        digest=state_digest((a.id, a.digest) for a in agents), git_commit="c0ffee", source="git")


def live(name: str, version: str, *, state: str = "Active", rollout: RolloutState | None = None) -> AgentState:
    wanted = agent(name, version)
    return AgentState(id=wanted.id, name=name, kind="config", version=version, state=state, revision=1,
                      spec=wanted.spec.model_dump(mode="json"), spec_digest=wanted.digest,
                      applied_spec_digest=wanted.digest, rollout=rollout)


def rollout(name: str, to: str, *, status: str = "paused", step: int = 1, reason: str = "") -> RolloutState:
    return RolloutState(id="r1", strategy="canary", status=status, step=step, steps=3, reason=reason,
                        stable_revision=1, stable_version="1.0.0", candidate_revision=2, candidate_version=to,
                        candidate_digest=agent(name, to).digest, apply_id="a1")


def rows(want: DesiredState | None, *agents: AgentState,
         held: dict[str, Held] | None = None) -> dict[str, tuple[str, str, str]]:
    snapshot = StateSnapshot(serial=3, engine_version="0.1.0", agents=list(agents))
    plan: Plan | None = build.make_plan(want, snapshot, REQUEST) if want is not None else None
    return {r.id: (r.sync, r.health, r.reason) for r in health.derive(snapshot, plan, held)}


NO_DATA = "inconclusive: error_rate: no data (0 requests < 20 needed)"


def test_in_sync_agents_are_synced_and_healthy() -> None:
    assert rows(desired(agent("a", "1.0.0")), live("a", "1.0.0")) == {"a": ("Synced", "Healthy", "")}


def test_a_new_desired_version_is_out_of_sync_until_applied() -> None:
    assert rows(desired(agent("a", "1.1.0")), live("a", "1.0.0"))["a"][:2] == ("OutOfSync", "Healthy")


def test_a_paused_rollout_to_the_desired_version_is_synced_and_paused_with_the_command() -> None:
    found = rows(desired(agent("data-processor", "1.1.0")),
                 live("data-processor", "1.0.0", rollout=rollout("data-processor", "1.1.0", reason=NO_DATA)))
    assert found["data-processor"] == (
        "Synced", "Paused",
        "rollout to 1.1.0 paused at step 1/3 (no data): `caxton rollout promote data-processor`")


def test_a_running_rollout_is_progressing() -> None:
    found = rows(desired(agent("a", "1.1.0")), live("a", "1.0.0", rollout=rollout("a", "1.1.0", status="running",
                                                                                  step=2)))
    assert found["a"] == ("Synced", "Progressing", "rollout to 1.1.0 at step 2/3")


def test_a_newer_desired_version_than_the_paused_candidate_is_out_of_sync() -> None:
    found = rows(desired(agent("a", "1.2.0")), live("a", "1.0.0", rollout=rollout("a", "1.1.0", reason=NO_DATA)))
    assert found["a"][:2] == ("OutOfSync", "Paused")


def test_missing_suspended_and_failed_agents() -> None:
    found = rows(desired(agent("new", "1.0.0"), agent("sleepy", "1.0.0"), agent("broken", "1.0.0")),
                 live("sleepy", "1.0.0", state="Suspended"), live("broken", "1.0.0", state="Failed"))
    assert found["new"] == ("OutOfSync", "Missing", "not on the engine yet: the next apply creates it")
    assert found["sleepy"][:2] == ("OutOfSync", "Suspended")
    assert found["broken"][1] == "Degraded"


def test_a_held_rolled_back_version_is_degraded_until_the_desired_state_changes() -> None:
    held = {"a": Held(agent("a", "1.1.0").digest, "1.1.0", "error_rate 0.5 > 0.05", "apply-1")}
    found = rows(desired(agent("a", "1.1.0")), live("a", "1.0.0"), held=held)
    assert found["a"] == ("OutOfSync", "Degraded",
                          "rollout to 1.1.0 rolled back (error_rate 0.5 > 0.05); 1.0.0 serves: commit a fix")
    assert rows(desired(agent("a", "1.2.0")), live("a", "1.0.0"), held=held)["a"][:2] == ("OutOfSync", "Healthy")


def test_without_a_plan_sync_is_unknown_and_health_still_derived() -> None:
    found = rows(None, live("a", "1.0.0", rollout=rollout("a", "1.1.0", reason=NO_DATA)), live("b", "2.0.0"))
    assert found == {"a": ("-", "Paused", "rollout to 1.1.0 paused at step 1/3 (no data): "
                                          "`caxton rollout promote a`"),
                     "b": ("-", "Healthy", "")}


def change(agent: str, status: str, message: str) -> ChangeResult:
    return ChangeResult.model_validate({"id": agent, "action": "update", "strategy": "canary", "status": status,
                                        "message": message, "revision": None, "duration_ms": None})


def test_the_tracker_holds_a_rolled_back_version_and_releases_it_on_a_new_one() -> None:
    engine = StateSnapshot(serial=3, engine_version="0.1.0", agents=[live("a", "1.0.0"), live("b", "1.0.0")])
    plan = build.make_plan(desired(agent("a", "1.1.0"), agent("b", "1.1.0")), engine, REQUEST)
    tracker = Tracker()
    tracker.record("apply-1", plan, "rolled_back", [
        change("a", "rolled_back", "rollout r1 rolled back: error_rate 0.5 > 0.05"), change("b", "done", "updated")])
    assert set(tracker.held) == {"a"} and not tracker.in_flight
    kept, held = tracker.hold(plan)
    assert held == ["a"]
    assert [c.id for c in kept.actionable()] == ["b"]
    newer = build.make_plan(desired(agent("a", "1.2.0"), agent("b", "1.1.0")), engine, REQUEST)
    kept, held = tracker.hold(newer)
    assert held == [] and tracker.held == {}
    assert [c.id for c in kept.actionable()] == ["a", "b"]


def test_a_progressing_apply_stays_in_flight() -> None:
    engine = StateSnapshot(serial=3, engine_version="0.1.0", agents=[live("a", "1.0.0")])
    plan = build.make_plan(desired(agent("a", "1.1.0")), engine, REQUEST)
    tracker = Tracker()
    tracker.record("apply-2", plan, "progressing", [])
    assert tracker.in_flight and tracker.held == {}


# --- text (snapshots) ------------------------------------------------------------------------------------------
def report(**extra: Any) -> dict[str, Any]:
    paused = {"id": "data-processor", "name": "data-processor", "sync": "Synced", "health": "Paused",
              "reason": "rollout to 1.1.0 paused at step 1/3 (no data): `caxton rollout promote data-processor`",
              "version": "1.0.0", "desired_version": "1.1.0"}
    served = [{"id": n, "name": n, "sync": "Synced", "health": "Healthy", "reason": "", "version": v,
               "desired_version": v} for n, v in (("scorer", "1.0.1"), ("summarizer", "0.3.2"))]
    status = {
        "source": "git /repo branch main", "kind": "git", "branch": "main", "interval_seconds": 30.0,
        "loop_id": "0123abcd4567", "holder": "host pid 42", "state": "waiting",
        "last_seen_commit": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
        "last_applied_commit": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432", "last_outcome": "in_sync",
        "last_message": "no changes: the engine matches (data-processor paused)", "last_error": None,
        "last_run_at": "2026-11-26T13:00:00Z", "last_success_at": "2026-11-26T13:00:00Z", "retries": 0,
        "held": False, "in_flight": ["ab12cd34ef56"], "next_attempt_at": "2026-11-26T13:00:30Z", "diagnostics": [],
        "engines": [{"engine": "http://127.0.0.1:8080", "commit": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
                     "outcome": "in_sync", "message": "", "apply_id": "ab12cd34ef56", "agents": [paused, *served]}],
    } | extra
    return {"board": "b1", "now": "2026-11-26T13:00:02Z", "reported_at": "2026-11-26T13:00:01Z", "status": status}


def test_status_text_of_a_loop_waiting_on_a_paused_canary(snapshot: SnapshotAssertion) -> None:
    assert "\n".join(sync_view.status_lines(report())) == snapshot


def test_status_text_of_a_loop_in_error_and_of_a_lost_loop(snapshot: SnapshotAssertion) -> None:
    down = "cannot reach the engine at http://127.0.0.1:8080"
    failing = report(state="error", last_outcome="unreachable", retries=3, in_flight=[], last_message=down,
                     last_success_at="2026-11-26T12:59:00Z", last_error=f"unreachable: {down}")
    assert "\n".join(sync_view.status_lines(failing)) == snapshot(name="error")
    lost = report() | {"now": "2026-11-26T13:05:00Z"}
    lines = sync_view.status_lines(lost)
    assert lines[1].startswith("state:               lost")
    assert "\n".join(lines) == snapshot(name="lost")
    assert sync_view.sync_by_agent(lost, "http://127.0.0.1:8080") is None, "a lost loop's SYNC is not shown"


def test_the_next_attempt_is_never_shown_in_the_past() -> None:
    for now in ("2026-11-26T13:00:02Z", "2026-11-26T13:00:30Z", "2026-11-26T13:00:40Z", "2026-11-26T13:10:00Z"):
        shown = sync_view.status_lines(report() | {"now": now})
        line = next(text for text in shown if text.startswith("next attempt:"))
        assert "in " in line or "due now" in line or "no report since" in line, line


def test_agents_list_takes_sync_from_a_live_loop_and_health_from_the_engine_now(snapshot: SnapshotAssertion) -> None:
    engine = StateSnapshot(serial=3, engine_version="0.1.0", agents=[
        live("data-processor", "1.0.0", rollout=rollout("data-processor", "1.1.0", reason=NO_DATA)),
        live("scorer", "1.0.1"), live("summarizer", "0.3.2")])

    def listed(view: dict[str, Any]) -> list[dict[str, Any]]:
        agents = [AgentSummary(id=a.id, name=a.name, kind=a.kind, version=a.version, state=a.state,
                               revision=a.revision, traffic={"1": 100}) for a in engine.agents]
        return agent_views.add_health(agents, engine, view, "http://127.0.0.1:8080")

    with_loop = listed(report())
    assert "\n".join(agent_views.agents_lines(with_loop)) == snapshot(name="with a live loop")
    assert [(a["sync"], a["health"]) for a in with_loop] == [
        ("Synced", "Paused"), ("Synced", "Healthy"), ("Synced", "Healthy")]
    without = listed({"board": "b1", "status": None})
    assert [(a["sync"], a["health"]) for a in without] == [("-", "Paused"), ("-", "Healthy"), ("-", "Healthy")]
    stopped = listed(report(state="stopped"))
    assert {a["sync"] for a in stopped} == {"-"}, "a stopped loop no longer vouches for SYNC"

    held = report()
    held["status"]["engines"][0]["agents"][1] |= {"sync": "OutOfSync", "health": "Degraded",
                                                  "reason": "rollout to 1.0.2 rolled back (x); 1.0.1 serves: commit a fix"}
    scorer = listed(held)[1]
    assert (scorer["sync"], scorer["health"]) == ("OutOfSync", "Degraded") and "rolled back" in scorer["health_reason"]
