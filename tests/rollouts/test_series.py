"""A rollout's time series (``GET /api/v1/rollouts/{agent}/series``): requests, errors and p95 latency per
revision in time buckets over the whole rollout, in simulated time (a ``ManualClock``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caxton.engine.core import Engine
from caxton.engine.rollouts.series import MAX_BUCKETS, Series
from caxton.engine.rollouts.histogram import latency_index
from caxton.engine.state.records import Source
from caxton.errors import AgentFailure, NotFound
from caxton.spec import api
from tests.rollouts import agents
from tests.rollouts.conftest import advance, start
from tests.support.clock import ManualClock

#: Each step waits for enough traffic (min_requests), so the test decides when it moves.
CANARY = {"strategy": "canary", "steps": [50, 100], "interval": 30,
          "analysis": {"min_requests": 1000, "max_error_rate": 0.5}}


def send(engine: Engine, count: int) -> dict[int, list[bool]]:
    """``count`` messages in new conversations; each revision's outcomes (True: answered)."""
    outcomes: dict[int, list[bool]] = {}
    for n in range(count):
        try:
            revision = int(engine.send("echo", {"n": n}, f"c-{n}-{id(outcomes)}")["revision"])
            outcomes.setdefault(revision, []).append(True)
        except AgentFailure as error:
            assert "revision 2" in error.message or "boom" in error.message, error.message
            outcomes.setdefault(2, []).append(False)
    return outcomes


def test_the_series_counts_each_revisions_messages_in_five_second_buckets(
    sim_echo_engine: Engine, sim_clock: ManualClock,
) -> None:
    started = start(sim_echo_engine, CANARY, agents.module(2, faulty=True))
    first = send(sim_echo_engine, 80)
    advance(sim_clock, 12)  # the third bucket (10-15 s)
    third = send(sim_echo_engine, 20)
    advance(sim_clock, 1)
    series = api.RolloutSeries.model_validate(sim_echo_engine.rollout_series("echo"))
    assert series.rollout_id == started["rollout"] and series.status == api.RolloutStatus.RUNNING
    assert series.bucket_s == 5.0
    assert [(r.revision, r.role) for r in series.revisions] == [(1, "stable"), (2, "candidate")]
    for shown in series.revisions:
        assert [p.t_s for p in shown.points] == [0.0, 5.0, 10.0]
        assert [p.requests for p in shown.points] == [len(first.get(shown.revision, [])), 0,
                                                      len(third.get(shown.revision, []))]
        assert [p.errors for p in shown.points] == [first.get(shown.revision, []).count(False), 0,
                                                    third.get(shown.revision, []).count(False)]
        assert shown.points[0].request_rate == shown.points[0].requests / 5.0
        assert shown.points[2].request_rate == pytest.approx(shown.points[2].requests / 3.0, abs=1e-3)  # 3 s of it so far
        assert shown.points[1].error_rate is None and shown.points[1].p95_latency_ms is None
        assert shown.points[0].p95_latency_ms is not None and shown.points[0].p95_latency_ms > 0
    candidate = series.revisions[1].points[0]
    assert candidate.errors > 0 and candidate.error_rate == pytest.approx(candidate.errors / candidate.requests, abs=1e-6)

    sim_echo_engine.abort("echo", Source("test"))
    advance(sim_clock, 20)  # the series ends with the rollout
    ended = api.RolloutSeries.model_validate(sim_echo_engine.rollout_series("echo"))
    assert ended.status == api.RolloutStatus.ROLLED_BACK
    assert [len(r.points) for r in ended.revisions] == [3, 3]


def test_no_series_without_a_rollout(sim_echo_engine: Engine) -> None:
    with pytest.raises(NotFound, match="no rollout since the engine started"):
        sim_echo_engine.rollout_series("echo")
    with pytest.raises(NotFound, match="no agent named 'ghost'"):
        sim_echo_engine.rollout_series("ghost")


def test_a_long_rollout_keeps_a_bounded_number_of_wider_buckets() -> None:
    clock = ManualClock()
    series = Series(clock, clock.monotonic())
    for _ in range(3 * MAX_BUCKETS):
        series.record(latency_index(0.004), ok=True)
        clock.advance(5.0)
    assert series.width == 20.0
    points = series.points(clock.monotonic(), datetime(2026, 1, 1, tzinfo=UTC), series.width)
    assert len(points) <= MAX_BUCKETS
    assert sum(p["requests"] for p in points) == 3 * MAX_BUCKETS
    assert all(p["p95_latency_ms"] == pytest.approx(4.0, rel=0.05) for p in points if p["requests"])
