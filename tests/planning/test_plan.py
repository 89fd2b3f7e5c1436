"""Plan construction and rendering (pure, text and markdown): every action, drift, secrets, safety rails."""

from __future__ import annotations

from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from caxton.desired.model import DesiredAgent, DesiredState
from caxton.errors import InvalidInput
from caxton.planning import build, markdown, planfile, render
from caxton.spec.agent import parse_agent
from caxton.spec.diagnostics import Diagnostic, Severity
from caxton.spec.digest import spec_digest, state_digest
from caxton.spec.plan import PlanSource
from caxton.spec.state import AgentState, RolloutState, StateSnapshot

SCORER_SHA = "a" * 64


def config(name: str, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "system_prompt": "You help.", **extra}


def wasm(name: str, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "kind": "wasm", "module": "../wasm/x.wasm", **extra}


def desired_agent(raw: dict[str, Any], module_sha: str | None = None) -> DesiredAgent:
    spec = parse_agent(raw)
    sha = module_sha if spec.kind == "wasm" else None
    return DesiredAgent.of(
        spec=spec,
        file=f"agents/{spec.id}.md",
        module_bytes=None,
        module_sha256=sha,
        digest=spec_digest(spec.model_dump(mode="json"), sha),
    )


def desired(*raws: dict[str, Any]) -> DesiredState:
    agents = tuple(sorted((desired_agent(r, SCORER_SHA) for r in raws), key=lambda a: a.id))
    return DesiredState(
        root="/repo",
        agents=agents,
        diagnostics=(),
        digest=state_digest((a.id, a.digest) for a in agents),
        git_commit="0123456789abcdef0123",
        source="dir",
    )


def live_agent(raw: dict[str, Any], *, state: str | None = None, applied: bool = True, revision: int = 1) -> AgentState:
    agent = desired_agent(raw, SCORER_SHA)
    spec = agent.spec
    return AgentState(
        id=spec.id,
        name=spec.name,
        kind=spec.kind,
        version=spec.version,
        state=state or ("Running" if spec.kind == "wasm" else "Active"),
        revision=revision,
        spec=spec.model_dump(mode="json"),
        spec_digest=agent.digest,
        applied_spec_digest=agent.digest if applied else "sha256:something-else",
        module_sha256=agent.module_sha256,
    )


def snapshot_of(*agents: AgentState, serial: int = 7) -> StateSnapshot:
    return StateSnapshot(serial=serial, engine_version="0.1.0", agents=list(agents))


REQUEST = build.PlanRequest(
    plan_id="plan-1",
    created_at="2026-11-21T00:00:00Z",
    engine_url="http://127.0.0.1:8080",
    source=PlanSource(path="agents", git_commit="0123456789abcdef0123"),
)


def test_every_action_in_one_plan(snapshot: SnapshotAssertion) -> None:
    want = desired(
        config("new-agent"),
        config("changed", "1.1.0", tools=["calculator"], system_prompt="You help.\nBe brief.\n"),
        config("same"),
        wasm("flipped"),
    )
    have = snapshot_of(
        live_agent(config("changed", system_prompt="You help.\nBe verbose.\n")),
        live_agent(config("same")),
        live_agent(config("flipped")),
        live_agent(config("gone", "0.3.0")),
    )
    plan = build.make_plan(want, have, REQUEST)
    actions = {c.id: c.action for c in plan.changes}
    assert actions == {
        "new-agent": "create",
        "changed": "update",
        "same": "no-op",
        "flipped": "replace",
        "gone": "delete",
    }
    assert plan.engine_serial == 7
    assert plan.desired_digest == want.digest
    assert render.summary_line(plan) == "Plan: 1 to create, 1 to update, 1 to delete, 1 to replace."
    assert render.render_text(plan) == snapshot(name="text")
    assert markdown.render_markdown(plan) == snapshot(name="markdown")
    assert plan.model_dump(mode="json") == snapshot(name="json")


def test_no_changes_when_engine_matches(snapshot: SnapshotAssertion) -> None:
    plan = build.make_plan(desired(config("a")), snapshot_of(live_agent(config("a"))), REQUEST)
    assert not plan.has_changes
    assert render.summary_line(plan) == "No changes. The engine matches the desired state."
    assert markdown.render_markdown(plan) == snapshot(name="markdown")


def test_markdown_shows_warnings_and_drift_and_cannot_be_broken_by_values(snapshot: SnapshotAssertion) -> None:
    prompt = "Answer in markdown:\n```python\nprint(1)\n```\n"
    want = desired(config("a", system_prompt=prompt), config("b", "2.0.0", tools=["x|y"]))
    have = snapshot_of(live_agent(config("a", system_prompt="hot-fixed"), applied=False), live_agent(config("b")))
    warning = Diagnostic(code="W101", severity=Severity.WARNING, file="agents/b.md", line=3, column=1,
                         message="tool <x|y> is not registered")
    text = markdown.render_markdown(build.make_plan(want, have, REQUEST), [warning])
    assert "````diff" in text  # the fence outgrows the prompt's ``` so the prompt cannot close it
    assert "<x|y>" not in text
    assert "- `agents/b.md:3:1`: tool &lt;x\\|y> is not registered (W101)" in text
    assert text == snapshot(name="markdown")


def test_identity_is_kebab_case_insensitive() -> None:
    plan = build.make_plan(desired(config("DataProcessor")), snapshot_of(live_agent(config("data-processor"))), REQUEST)
    assert [c.id for c in plan.changes] == ["data-processor"]
    assert plan.changes[0].action == "update"
    assert [f.path for f in plan.changes[0].changes] == ["name"]


def test_suspended_by_hand_is_drift_and_resumed() -> None:
    plan = build.make_plan(desired(config("a")), snapshot_of(live_agent(config("a"), state="Suspended")), REQUEST)
    change = plan.changes[0]
    assert (change.action, change.drift, change.strategy) == ("update", True, "resume")
    assert [(f.path, f.before, f.after) for f in change.changes] == [("(state)", "Suspended", "Active")]


def test_hotfix_on_engine_is_drift() -> None:
    have = snapshot_of(live_agent(config("a", system_prompt="hot-fixed"), applied=False))
    change = build.make_plan(desired(config("a")), have, REQUEST).changes[0]
    assert change.action == "update" and change.drift
    assert change.changes[0].path == "system_prompt"


def test_wasm_module_change_shows_digests() -> None:
    want = desired(wasm("scorer"))
    have_agent = live_agent(wasm("scorer")).model_copy(update={"module_sha256": "b" * 64, "spec_digest": "sha256:old"})
    change = build.make_plan(want, snapshot_of(have_agent), REQUEST).changes[0]
    assert change.action == "update"
    assert ("(module)", "b" * 64, SCORER_SHA) in [(f.path, f.before, f.after) for f in change.changes]


def test_secrets_are_never_shown() -> None:
    want = desired(config("a", parameters={"api_key": "new-secret-value", "region": "eu", "note": "sk-abcdefghijklmnopqrstuv"}))
    have = snapshot_of(live_agent(config("a", parameters={"api_key": "old-secret-value", "region": "us"})))
    plan = build.make_plan(want, have, REQUEST)
    text = render.render_text(plan) + planfile.dumps(plan) + markdown.render_markdown(plan)
    for secret in ("new-secret-value", "old-secret-value", "sk-abcdefghijklmnopqrstuv"):
        assert secret not in text
    fields = {f.path: f for f in plan.changes[0].changes}
    assert fields["parameters.api_key"].after == "(sensitive)" and fields["parameters.api_key"].sensitive
    assert fields["parameters.note"].after == "(sensitive)"
    assert fields["parameters.region"].after == "eu"


def test_mcp_servers_show_variable_names_never_values_and_a_url_query_is_sensitive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WIKI_TOKEN", "Bearer sk-wiki-0123456789abcdef")  # on this host; the plan never reads it
    wiki = {"name": "wiki", "url": "https://wiki.example.com/mcp?key=k-123456", "allowed_tools": ["search"],
            "headers": {"Authorization": {"env": "WIKI_TOKEN"}}}
    policy = {"allowed_hosts": ["wiki.example.com"]}  # the server's host (validation: CX326)
    want = desired(config("a", tools=["wiki.search"], mcp_servers=[wiki], security_policy=policy))
    have = snapshot_of(live_agent(config("a")))
    plan = build.make_plan(want, have, REQUEST)
    text = render.render_text(plan) + planfile.dumps(plan) + markdown.render_markdown(plan)
    assert "k-123456" not in text and "sk-wiki" not in text
    fields = {f.path: f for f in plan.changes[0].changes}
    assert plan.changes[0].action == "update" and fields["tools[0]"].after == "wiki.search"
    assert fields["mcp_servers"].after == "(sensitive)" and fields["mcp_servers"].sensitive
    renamed = desired(config("a", tools=["wiki.search"], mcp_servers=[{**wiki, "url": "https://wiki.example.com/mcp",
                                                                       "headers": {"Authorization": {"env": "WIKI_KEY"}}}],
                             security_policy=policy))
    live = config("a", tools=["wiki.search"], mcp_servers=[wiki], security_policy=policy)
    plan = build.make_plan(renamed, snapshot_of(live_agent(live)), REQUEST)
    fields = {f.path: f for f in plan.changes[0].changes}
    assert fields["mcp_servers[0].headers.Authorization.env"].after == "WIKI_KEY"  # a name, shown
    url = fields["mcp_servers[0].url"]  # one side is sensitive: the change hides both
    assert (url.before, url.after, url.sensitive) == ("(sensitive)", "(sensitive)", True)


def test_an_agent_without_mcp_servers_keeps_its_spec_digest() -> None:
    """The key is left out while empty: the digest of every agent deployed before MCP servers stays."""
    assert "mcp_servers" not in parse_agent(config("a")).model_dump(mode="json")
    assert "mcp_servers" not in parse_agent(config("a", mcp_servers=[])).model_dump(mode="json")


def test_deleting_everything_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        build.make_plan(desired(), snapshot_of(live_agent(config("a")), live_agent(config("b"))), REQUEST)
    assert "--allow-delete-all" in (refused.value.hint or "")
    allowed = build.PlanRequest(**{**REQUEST.__dict__, "allow_delete_all": True})
    plan = build.make_plan(desired(), snapshot_of(live_agent(config("a"))), allowed)
    assert [c.action for c in plan.changes] == ["delete"]


def test_no_prune_keeps_agents_missing_from_git() -> None:
    keep = build.PlanRequest(**{**REQUEST.__dict__, "prune": False})
    plan = build.make_plan(desired(config("a")), snapshot_of(live_agent(config("a")), live_agent(config("b"))), keep)
    assert {c.id: c.action for c in plan.changes} == {"a": "no-op", "b": "no-op"}


def test_invalid_desired_state_is_refused() -> None:
    from caxton.spec.diagnostics import Diagnostic, Severity

    bad = desired(config("a"))
    bad = DesiredState(**{**bad.__dict__, "diagnostics": (Diagnostic(code="E1", severity=Severity.ERROR, file="x", message="m"),)})
    with pytest.raises(InvalidInput):
        build.make_plan(bad, snapshot_of(), REQUEST)


def test_plan_file_round_trip_and_version_check() -> None:
    plan = build.make_plan(desired(config("a")), snapshot_of(), REQUEST)
    assert planfile.loads(planfile.dumps(plan)) == plan
    with pytest.raises(InvalidInput, match="format 99"):
        planfile.loads(planfile.dumps(plan).replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(InvalidInput, match="not JSON"):
        planfile.loads("{nope")
    with pytest.raises(InvalidInput, match="not a Caxton plan"):
        planfile.loads("[]")


def in_flight(live: AgentState, candidate: dict[str, Any], *, paused: bool = True) -> AgentState:
    """``live`` (its stable revision) with a canary to ``candidate`` in flight at step 1/3."""
    target = desired_agent(candidate, SCORER_SHA)
    rollout = RolloutState(
        id="r-1", strategy="canary", status="paused" if paused else "running", step=1, steps=3,
        reason="inconclusive: error_rate: 0 request(s), 20 needed" if paused else "",
        stable_revision=live.revision, stable_version=live.version, candidate_revision=live.revision + 1,
        candidate_version=target.version, candidate_digest=target.digest, apply_id="apply-1",
    )
    return live.model_copy(update={"rollout": rollout})


CANARY = {"rollout": {"strategy": "canary", "steps": [10, 50, 100]}}


def test_a_rollout_in_flight_is_left_aborted_or_superseded(snapshot: SnapshotAssertion) -> None:
    stable, candidate = config("kept", **CANARY), config("kept", "1.1.0", **CANARY)
    have = snapshot_of(
        in_flight(live_agent(stable), candidate),
        in_flight(live_agent(config("back", **CANARY)), config("back", "1.1.0", **CANARY), paused=False),
        in_flight(live_agent(config("newer", **CANARY)), config("newer", "1.1.0", **CANARY)),
    )
    want = desired(candidate, config("back", **CANARY), config("newer", "1.2.0", **CANARY))
    plan = build.make_plan(want, have, REQUEST)
    changes = {c.id: c for c in plan.changes}
    assert changes["kept"].action == "no-op"
    assert changes["kept"].reason == "rollout to 1.1.0 paused at step 1/3 (no data)"
    assert (changes["back"].action, changes["back"].strategy) == ("update", "abort")
    assert changes["back"].reason == "rollout to 1.1.0 at step 1/3 -> aborted: 1.0.0 is desired"
    assert (changes["newer"].action, changes["newer"].strategy) == ("update", "canary")
    assert changes["newer"].reason == "rollout to 1.1.0 paused at step 1/3 (no data) -> superseded by 1.2.0"
    assert {c.id: c.rollout_id for c in plan.changes} == {"kept": "r-1", "back": "r-1", "newer": "r-1"}
    assert render.render_text(plan) == snapshot(name="text")
    assert markdown.render_markdown(plan) == snapshot(name="markdown")


def test_only_rollouts_in_flight_is_no_change() -> None:
    candidate = config("kept", "1.1.0", **CANARY)
    plan = build.make_plan(desired(candidate), snapshot_of(in_flight(live_agent(config("kept", **CANARY)), candidate)),
                           REQUEST)
    assert not plan.has_changes
    assert render.summary_line(plan) == (
        "No changes. The engine is rolling out the desired state (1 rollout(s) in flight).")


def test_a_changed_wasm_tool_updates_the_agents_that_list_it(snapshot: SnapshotAssertion) -> None:
    tool = {"description": "count words", "parameters": {"type": "object"}}
    users = (config("editor", tools=["word-count", "calculator"]), config("plain", tools=["calculator"]),
             config("reviewer", "1.0.0", tools=["WordCount"], rollout={"strategy": "canary"}))
    have = snapshot_of(live_agent(wasm("word-count", tool=tool)), *(live_agent(u) for u in users),
                       live_agent(config("writer", tools=["word-count"])))
    want = desired(wasm("word-count", "1.1.0", tool=tool), *users,
                   config("writer", "2.0.0", tools=["word-count"], system_prompt="You write."))
    plan = build.make_plan(want, have, REQUEST)
    by_id = {c.id: c for c in plan.changes}
    assert {i: (c.action, c.strategy, c.tools_changed) for i, c in by_id.items()} == {
        "word-count": ("update", "immediate", []),
        "editor": ("update", "immediate", ["word-count"]),  # unchanged itself: updated for its tool
        "reviewer": ("update", "canary", ["WordCount"]),  # by its own strategy; the name as it lists it
        "writer": ("update", "immediate", ["word-count"]),  # changed itself too: both reasons
        "plain": ("no-op", "none", []),
    }
    assert by_id["writer"].reason == "spec changed; tool word-count changed"
    assert render.render_text(plan) == snapshot(name="text")
    assert "tools_changed" not in plan.model_dump(mode="json")["changes"][1]  # plain: left out when empty
    # once the tool is applied, the users are no-ops again (the dependency is not in any digest)
    applied = snapshot_of(live_agent(wasm("word-count", "1.1.0", tool=tool)), *(live_agent(u) for u in users))
    again = build.make_plan(desired(wasm("word-count", "1.1.0", tool=tool), *users), applied, REQUEST)
    assert {c.action for c in again.changes} == {"no-op"}


def test_a_tool_change_of_state_only_updates_no_user() -> None:
    tool = {"description": "count words"}
    user = config("editor", tools=["word-count"])
    have = snapshot_of(live_agent(wasm("word-count", tool=tool), state="Stopped"), live_agent(user))
    plan = build.make_plan(desired(wasm("word-count", tool=tool), user), have, REQUEST)
    assert {c.id: c.action for c in plan.changes} == {"word-count": "update", "editor": "no-op"}
