"""Views of ``caxton rollout``: rollouts with their steps, traffic, live windows and measurements; promote/abort."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caxton.cli.views.registry import json_view, text_view
from caxton.cli.views.text import table, traffic, when

if TYPE_CHECKING:
    from caxton.spec.api import Event, Measurement, RolloutProgress, RolloutView, RolloutWindow

#: How many measurements the text shows (the newest; the JSON has them all).
SHOWN = 12


@dataclass(frozen=True)
class Rollouts:
    """``rollout status``: the rollouts found (JSON: ``{"rollouts": [...]}``)."""

    found: list[RolloutView]


@json_view("Rollouts")
def rollouts_json(rollouts: Rollouts) -> Any:
    return {"rollouts": rollouts.found}


@text_view("Rollouts")
def rollouts_text(rollouts: Rollouts) -> list[str]:
    if not rollouts.found:
        return ["no rollouts"]
    lines: list[str] = []
    for number, rollout in enumerate(rollouts.found):
        lines += [""] * (number > 0) + list(_one(rollout))
    return lines


@text_view("RolloutView")
def ended_text(result: RolloutView) -> list[str]:
    """What ``promote`` and ``abort`` say."""
    return [f"{result.name}: rollout {result.id} {result.status.replace('_', ' ')}: {result.reason}"]


def change_line(change: RolloutProgress | Event) -> str:
    """One line of ``rollout status --watch`` off a terminal: a rollout's progress, or the event that ended it."""
    from caxton.spec.api import RolloutProgress

    if isinstance(change, RolloutProgress):
        return f"{change.rollout.name}: {change.message}"
    return f"{change.agent}: {change.message}"


def _one(r: RolloutView) -> Iterator[str]:
    from caxton.spec.api import ROLLOUT_ACTIVE as ACTIVE

    steps = r.steps
    step = f"step {r.step + 1}/{len(steps)} ({steps[r.step]})" if steps else ""
    yield (f"{r.name}: {r.strategy} rollout {r.id} {r.status.replace('_', ' ').upper()}"
           + (f" at {step}" if r.status in ACTIVE else ""))
    yield f"  revisions: {r.stable_revision} (stable) -> {r.candidate_revision} ({r.candidate_version})"
    yield "  traffic:   " + traffic(r.weights, long=True)
    yield (f"  started:   {when(r.started_at)} by {r.actor or 'engine'}"
           + (f"; finished {when(r.finished_at)}" if r.finished_at else ""))
    if r.reason:
        yield f"  reason:    {r.reason}"
    if r.live:
        yield f"  live:      candidate {_window(r.live.candidate)} | stable {_window(r.live.stable)}"
    yield from _measurements(r.measurements)


def _window(w: RolloutWindow) -> str:
    rate = f"{w.error_rate * 100:.1f} %" if w.error_rate is not None else "-"
    p95 = f"{w.p95_latency_ms:g} ms" if w.p95_latency_ms is not None else "-"
    text = f"{w.requests} requests, {w.errors} errors ({rate}), p95 {p95}"
    if w.compared:
        text += f", {(w.divergence_rate or 0.0) * 100:.1f} % of {w.compared} replies differ"
    return text


def _measurements(found: list[Measurement]) -> list[str]:
    if not found:
        return []
    header = ("STEP", "METRIC", "REVISION", "VALUE", "THRESHOLD", "REQUESTS", "VERDICT")
    rows = [(str(m.step + 1), m.metric[:60], str(m.revision), _num(m.value),
             f"{m.comparison} {_num(m.threshold)}", str(m.requests), m.verdict.upper())
            for m in found[-SHOWN:]]
    more = [f"  ({len(found) - SHOWN} earlier measurement(s): --output json)"] if len(found) > SHOWN else []
    return ["  measurements:", *more, *table(header, rows, indent="  ")]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
