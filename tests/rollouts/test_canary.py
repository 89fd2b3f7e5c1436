"""Canary rollouts in an in-process engine under continuous load: promotion, automatic rollback, no data."""

from __future__ import annotations

import time

import pytest

from caxton.engine.core import Engine
from caxton.errors import Conflict
from tests.rollouts import agents
from tests.rollouts.conftest import Load, Progress, advance, candidate_requests, sender, start
from tests.support.clock import ManualClock
from tests.support.poll import wait_for

CANARY = {"strategy": "canary", "steps": [10, 50, 100], "interval": 0.4, "analysis": {"min_requests": 10}}


def test_a_healthy_canary_promotes_through_every_step(echo_engine: Engine) -> None:
    progress = Progress()
    with Load(sender(echo_engine)) as load:
        time.sleep(0.1)
        began = time.monotonic()
        started = start(echo_engine, CANARY, agents.module(2), progress=progress)
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=20)
        finished = progress.finished_at()
        time.sleep(0.2)
    assert rollout.status == "succeeded", rollout.reason
    steps = [m for m in progress.messages() if m.startswith("step ") and "passed" in m]
    assert [m.split(" ")[1] for m in steps] == ["1/3", "2/3", "3/3"]
    verdicts = {(m["step"], m["metric"]): m["verdict"] for m in rollout.measurements}
    assert verdicts == {(0, "error_rate"): "pass", (1, "error_rate"): "pass", (2, "error_rate"): "pass"}
    assert finished - began >= 3 * 0.4
    route = echo_engine.router.get("echo")
    assert route is not None and route.traffic() == {"2": 100}
    assert echo_engine.store.agent("echo").revision == 2  # type: ignore[union-attr]
    assert not load.switched(until=finished), "a conversation changed revision during the rollout"
    assert load.revisions(since=finished + 0.05) == {2: load.revisions(since=finished + 0.05)[2]}
    load.assert_only_failures_of(None)


def test_a_canary_failing_a_fifth_of_its_messages_is_rolled_back_within_one_interval(echo_engine: Engine) -> None:
    progress = Progress()
    with Load(sender(echo_engine)) as load:
        time.sleep(0.1)
        started = start(echo_engine, {**CANARY, "interval": 1.0}, agents.module(2, faulty=True), progress=progress)
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=20)
        time.sleep(0.2)
    assert rollout.status == "rolled_back"
    assert "error_rate" in rollout.reason and "> 0.05" in rollout.reason and "revision 2" in rollout.reason
    breach = min(r.done for r in load.failures())
    assert progress.finished_at() - breach <= 1.0
    assert rollout.timings["verdict_to_stable_ms"] < 100
    route = echo_engine.router.get("echo")
    assert route is not None and route.traffic() == {"1": 100}
    assert echo_engine.store.agent("echo").revision == 1  # type: ignore[union-attr]
    load.assert_only_failures_of(2)
    assert load.revisions(since=progress.finished_at() + 0.05).keys() == {1}
    failed = [m for m in rollout.measurements if m["verdict"] == "fail"]
    assert failed and failed[0]["threshold"] == 0.05 and failed[0]["value"] > 0.05
    events = [e.what for e in echo_engine.store.events(agent_id="echo")]
    assert "rollout_rolled_back" in events


def test_a_latency_regression_is_caught_by_the_p95_rule(echo_engine: Engine) -> None:
    rollout_spec = {**CANARY, "analysis": {"min_requests": 10, "max_p95_latency_ms": 15}}
    with Load(sender(echo_engine)) as load:
        started = start(echo_engine, rollout_spec, agents.module(2, sleep_ms=30))
        rollout = echo_engine.rollouts.wait(started["rollout"], timeout=20)
    assert rollout.status == "rolled_back"
    assert "p95_latency_ms" in rollout.reason
    failed = [m for m in rollout.measurements if m["verdict"] == "fail"]
    assert failed[0]["metric"] == "p95_latency_ms" and failed[0]["value"] >= 15
    load.assert_only_failures_of(None)


@pytest.mark.parametrize(("policy", "status"), [("fail", "rolled_back"), ("pass", "succeeded")])
def test_no_data_follows_on_no_data(sim_echo_engine: Engine, sim_clock: ManualClock, policy: str, status: str) -> None:
    rollout_spec = {"strategy": "canary", "steps": [50, 100], "interval": 30,
                    "analysis": {"min_requests": 5, "on_no_data": policy}}
    started = start(sim_echo_engine, rollout_spec, agents.module(2))
    advance(sim_clock, 29)
    assert sim_echo_engine.rollouts.active("echo") is not None, "no verdict before one interval"
    advance(sim_clock, 31)  # the second step's interval too (when the first passed)
    rollout = sim_echo_engine.rollouts.wait(started["rollout"], timeout=10)
    assert rollout.status == status
    assert rollout.measurements and all(m["verdict"] == "no_data" for m in rollout.measurements)
    if policy == "fail":
        assert "no data" in rollout.reason and "0 request(s), 5 needed" in rollout.reason


def test_no_data_pauses_by_default_and_goes_on_when_traffic_arrives(sim_echo_engine: Engine,
                                                                     sim_clock: ManualClock) -> None:
    progress = Progress()
    rollout_spec = {"strategy": "canary", "steps": [50, 100], "interval": 30, "analysis": {"min_requests": 5}}
    started = start(sim_echo_engine, rollout_spec, agents.module(2), progress=progress)
    advance(sim_clock, 30)
    assert sim_echo_engine.rollouts.active("echo") is not None
    assert sim_echo_engine.rollouts.active("echo").status == "paused"  # type: ignore[union-attr]
    assert any(m.startswith("paused: inconclusive") for m in progress.messages())
    with Load(sender(sim_echo_engine)) as load:
        for _ in range(2):  # each step: traffic into its window (real time), then its interval (simulated)
            wait_for(lambda: candidate_requests(sim_echo_engine) >= 10, what="traffic on the candidate")
            advance(sim_clock, 30)
        rollout = sim_echo_engine.rollouts.wait(started["rollout"], timeout=20)
    assert rollout.status == "succeeded"
    load.assert_only_failures_of(None)


def test_a_deploy_during_a_rollout_is_refused_with_a_hint(echo_engine: Engine) -> None:
    start(echo_engine, {**CANARY, "interval": 30}, agents.module(2))
    with pytest.raises(Conflict) as caught:
        echo_engine.deploy(agents.spec("echo", 3), agents.module(3))
    assert "rollout in progress" in caught.value.message
    assert "caxton rollout abort echo" in str(caught.value.hint)
