"""Gradual, blue-green, ab-test and shadow rollouts, and the operator's promote/abort, under load."""

from __future__ import annotations

import time

from caxton.engine.core import Engine
from caxton.engine.state.records import Source
from tests.rollouts import agents
from tests.rollouts.conftest import Load, Progress, sender, start


def test_gradual_keeps_open_conversations_on_the_old_revision(echo_engine: Engine) -> None:
    phase = {"old": True, "started": False}

    def conversation(k: int, n: int) -> str:
        if phase["old"] and k < 2:
            return f"old-{k}"
        return f"new-{k}-{n}" if phase["started"] else f"before-{k}-{n}"

    progress = Progress()
    with Load(sender(echo_engine), conversation=conversation) as load:
        time.sleep(0.2)
        began = time.monotonic()
        phase["started"] = True
        started = start(echo_engine, {"strategy": "gradual", "interval": 0.3, "drain_timeout": 20}, agents.module(2),
                        progress=progress)
        time.sleep(1.0)
        assert echo_engine.rollouts.active("echo") is not None, "the old revision stopped while conversations were open"
        phase["old"] = False
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=10)
    assert rollout.status == "succeeded"
    finished = progress.finished_at()
    old = [r for r in load.replies if r.conversation and r.conversation.startswith("old-")]
    routed = next(t for t, _, m in progress.lines if m.startswith("step 1/1"))  # the new route is in place
    new = [r for r in load.replies if r.conversation and r.conversation.startswith("new-") and routed < r.sent < finished]
    assert old and {r.revision for r in old} == {1}
    assert new and {r.revision for r in new} == {2}
    assert finished - began < 1.0 + 0.3 + 1.0  # stopped about one idle interval after the last old message
    load.assert_only_failures_of(None)


def test_gradual_stops_the_old_revision_after_drain_timeout(echo_engine: Engine) -> None:
    with Load(sender(echo_engine), conversation=lambda k, n: f"forever-{k}"):
        time.sleep(0.1)
        started = start(echo_engine, {"strategy": "gradual", "interval": 0.3, "drain_timeout": 0.8}, agents.module(2))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=10)
    assert rollout.status == "succeeded"
    assert echo_engine.router.get("echo").traffic() == {"2": 100}  # type: ignore[union-attr]


def test_blue_green_checks_the_preview_then_switches_atomically(echo_engine: Engine) -> None:
    rollout_spec = {"strategy": "blue-green", "preview_checks": [{"message": "ping", "expect_contains": '"v":2'}]}
    with Load(sender(echo_engine), conversation=lambda k, n: None, pause=0.0005) as load:
        time.sleep(0.2)
        started = start(echo_engine, rollout_spec, agents.module(2))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=10)
        time.sleep(0.2)
    assert rollout.status == "succeeded"
    first_new = min(r.done for r in load.replies if r.revision == 2)
    late_old = [r for r in load.replies if r.revision == 1 and r.sent > first_new]
    assert not late_old, f"{len(late_old)} message(s) sent after the switch went to the old revision"
    assert load.revisions(since=first_new).keys() == {2}
    load.assert_only_failures_of(None)


def test_blue_green_rolls_back_when_a_preview_check_fails(echo_engine: Engine) -> None:
    rollout_spec = {"strategy": "blue-green", "preview_checks": [{"message": "ping", "expect_contains": "pong"}]}
    with Load(sender(echo_engine)) as load:
        started = start(echo_engine, rollout_spec, agents.module(2))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=10)
    assert rollout.status == "rolled_back"
    assert "preview check 1 failed on revision 2" in rollout.reason and "'pong'" in rollout.reason
    assert load.revisions().keys() == {1}


def test_ab_test_holds_its_split_within_five_points_over_1000_messages(echo_engine: Engine) -> None:
    rollout_spec = {"strategy": "ab-test", "split": "80/20", "interval": 0.3, "analysis": {"min_requests": 5}}
    with Load(sender(echo_engine), conversation=lambda k, n: f"ab-{k}-{n}") as load:
        started = start(echo_engine, rollout_spec, agents.module(2))
        began = time.monotonic()
        while len([r for r in load.replies if r.sent > began]) < 1000 and time.monotonic() - began < 30:
            time.sleep(0.05)
        echo_engine.rollouts.abort("echo", Source(actor="test"))
    rollout = echo_engine.rollouts.wait(started["rollout"], timeout=5)
    during = sorted((r for r in load.replies if r.sent > began), key=lambda r: r.sent)[:1000]
    assert len(during) == 1000
    share = sum(1 for r in during if r.revision == 2) / len(during)
    assert 0.15 <= share <= 0.25, share
    assert rollout.status == "rolled_back" and rollout.reason == "aborted by test"
    baselines = [m for m in rollout.measurements if m["metric"] == "error_rate" and m["baseline"] is not None]
    assert baselines, "the ab-test reports the stable revision's metrics beside the candidate's"
    load.assert_only_failures_of(None)


def test_ab_test_with_a_duration_concludes_by_its_analysis(echo_engine: Engine) -> None:
    rollout_spec = {"strategy": "ab-test", "split": "50/50", "interval": 0.3, "duration": 0.6,
                    "analysis": {"min_requests": 5}}
    with Load(sender(echo_engine)):
        started = start(echo_engine, rollout_spec, agents.module(2))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=10)
    assert rollout.status == "succeeded"
    assert len({m["at"] for m in rollout.measurements}) >= 2


def test_shadow_compares_replies_and_promotes_an_equivalent_revision(echo_engine: Engine) -> None:
    rollout_spec = {"strategy": "parallel", "interval": 0.4, "analysis": {"min_requests": 10}}
    with Load(sender(echo_engine)) as load:
        started = start(echo_engine, rollout_spec, agents.module(1))  # same replies as the stable revision
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=10)
        finished = time.monotonic()
    assert rollout.status == "succeeded", rollout.reason
    divergence = [m for m in rollout.measurements if m["metric"] == "divergence_rate"]
    assert divergence and divergence[-1]["value"] == 0 and divergence[-1]["requests"] >= 10
    assert load.revisions(until=finished - 0.2).keys() == {1}, "clients saw the shadow's replies"
    load.assert_only_failures_of(None)


def test_shadow_with_diverging_replies_is_rolled_back_and_never_seen(echo_engine: Engine) -> None:
    rollout_spec = {"strategy": "shadow", "interval": 0.4, "analysis": {"min_requests": 10}}
    with Load(sender(echo_engine)) as load:
        started = start(echo_engine, rollout_spec, agents.module(2))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=10)
    assert rollout.status == "rolled_back"
    assert "divergence_rate 1 > 0.05" in rollout.reason
    assert load.revisions().keys() == {1}
    load.assert_only_failures_of(None)


def test_promote_skips_the_remaining_steps(echo_engine: Engine) -> None:
    with Load(sender(echo_engine)) as load:
        started = start(echo_engine, {"strategy": "canary", "steps": [10, 100], "interval": 60}, agents.module(2))
        time.sleep(0.2)
        view = echo_engine.rollouts.promote("ECHO", Source(actor="alice"))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=5)
        time.sleep(0.1)
    assert view["status"] == rollout.status == "succeeded"
    assert rollout.reason == "promoted by alice"
    assert echo_engine.router.get("echo").traffic() == {"2": 100}  # type: ignore[union-attr]
    load.assert_only_failures_of(None)


def test_abort_rolls_back_now(echo_engine: Engine) -> None:
    with Load(sender(echo_engine)) as load:
        started = start(echo_engine, {"strategy": "canary", "steps": [50, 100], "interval": 60}, agents.module(2))
        time.sleep(0.2)
        echo_engine.rollouts.abort("echo", Source(actor="bob"))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=5)
        stopped = time.monotonic()
        time.sleep(0.1)
    assert rollout.status == "rolled_back" and rollout.reason == "aborted by bob"
    assert load.revisions(since=stopped).keys() == {1}
    assert 2 in load.revisions(until=stopped)
    load.assert_only_failures_of(None)


def test_suspending_the_agent_cancels_its_rollout(echo_engine: Engine) -> None:
    started = start(echo_engine, {"strategy": "canary", "steps": [50, 100], "interval": 60}, agents.module(2))
    echo_engine.suspend("echo")
    rollout = echo_engine.rollouts.wait(started["rollout"], timeout=5)
    assert rollout.status == "cancelled" and "suspended" in rollout.reason
