"""The console's pure parts: chart layout, rollout step phases, SYNC from the loop's report, redaction."""

from __future__ import annotations

from typing import Any

import pytest

from caxton.engine.ui import charts, pages
from caxton.rules import redact


def test_a_chart_fits_its_series_and_threshold_in_the_box() -> None:
    chart = charts.line_chart("Error rate", "%", [
        charts.Series("stable", [(0.0, 0.0), (5.0, 0.01)], "series-stable"),
        charts.Series("candidate", [(0.0, 0.0), (10.0, 0.2)], "series-candidate")], threshold=0.05)
    assert chart.points == 4 and [line["label"] for line in chart.lines] == ["stable", "candidate"]
    xs = [x for line in chart.lines for x, _ in line["dots"]]
    ys = [y for line in chart.lines for _, y in line["dots"]]
    assert min(xs) == charts.LEFT and max(xs) == charts.WIDTH - charts.RIGHT
    assert max(ys) == charts.HEIGHT - charts.BOTTOM  # 0 at the bottom
    assert min(ys) >= charts.TOP  # 0.2 under the axis' top (0.2 is rounded up to 0.2)
    assert chart.threshold_y is not None and charts.TOP < chart.threshold_y < charts.HEIGHT - charts.BOTTOM
    assert chart.threshold_label == "5 %" and chart.y_labels[-1][1] == "20 %"
    assert ("candidate", "10.0s", "20 %") in chart.rows


def test_a_chart_without_data_says_so() -> None:
    chart = charts.line_chart("p95 latency", "ms", [charts.Series("candidate", [])])
    assert chart.points == 0 and chart.lines == [] and chart.y_labels[-1][1] == "1 ms"


def _rollout(status: str, step: int) -> dict[str, Any]:
    return {"status": status, "step": step, "steps": ["20 %", "50 %", "100 %"]}


@pytest.mark.parametrize(("status", "step", "phases"), [
    ("running", 1, ["done", "current", "todo"]),
    ("paused", 0, ["current", "todo", "todo"]),
    ("succeeded", 2, ["done", "done", "done"]),
    ("rolled_back", 0, ["failed", "todo", "todo"]),
    ("superseded", 1, ["done", "todo", "todo"]),
])
def test_the_steps_of_a_rollout_say_where_it_is(status: str, step: int, phases: list[str]) -> None:
    assert [s["phase"] for s in pages._steps(_rollout(status, step))] == phases


def test_sync_comes_from_a_loop_reporting_one_engine() -> None:
    row = {"id": "scorer", "sync": "Synced", "health": "Healthy"}
    board = {"reported": True, "status": {"state": "idle", "engines": [{"agents": [row]}]}}
    assert pages.sync_by_agent(board) == {"scorer": row}
    assert pages.sync_by_agent({**board, "status": {"state": "stopped", "engines": [{"agents": [row]}]}}) == {}
    assert pages.sync_by_agent({"reported": False, "status": None}) == {}


def test_a_spec_is_shown_with_its_secrets_redacted() -> None:
    spec = {"name": "a", "parameters": {"api_key": "x", "retries": 3, "auth": {"user": "u"}},
            "system_prompt": "call with sk-abcdefghijklmnopqrstuv", "capabilities": ["scoring"]}
    assert redact.redacted(spec) == {
        "name": "a", "parameters": {"api_key": redact.SENSITIVE, "retries": 3, "auth": {"user": redact.SENSITIVE}},
        "system_prompt": redact.SENSITIVE, "capabilities": ["scoring"]}


def test_a_rollouts_series_are_step_lines_per_revision_with_the_thresholds() -> None:
    def point(t: float, rate: float, errors: float | None, p95: float | None) -> dict[str, Any]:
        return {"t_s": t, "request_rate": rate, "error_rate": errors, "p95_latency_ms": p95}

    series = {"bucket_s": 5.0, "revisions": [
        {"revision": 1, "role": "stable", "points": [point(0, 40, 0.0, 2.0), point(5, 20, 0.0, 2.5)]},
        {"revision": 2, "role": "candidate", "points": [point(0, 10, 0.5, 9.0), point(5, 0, None, None)]}]}
    rate, errors, p95 = pages.series_charts(series, {"max_error_rate": 0.05, "max_p95_latency_ms": 100})
    assert [line["label"] for line in rate.lines] == ["revision 1 (stable)", "revision 2 (candidate)"]
    assert rate.points == 8 and rate.x_labels[-1][1] == "10s"  # two points per bucket, to the last one's end
    assert errors.points == 6 and errors.threshold_label == "5 %"  # no error rate without requests
    assert p95.threshold_label == "100 ms" and all(not line["dots"] for line in p95.lines)
