"""The console's charts: series of (time, value) per revision drawn as inline SVG, server-side. Pure.

``caxton.engine.ui.pages`` builds the series of a rollout (request rate,
error rate, p95 per revision); ``line_chart`` lays them out in a fixed
viewBox (the SVG scales with the page), with the threshold as a dashed line.
The browser redraws a chart by swapping in the page's new markup
(``console.js``): one drawing code, here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WIDTH, HEIGHT = 600.0, 180.0
#: A line of at most this many points also gets a dot per point (one point alone is no line).
DOTS = 40
LEFT, RIGHT, TOP, BOTTOM = 72.0, 12.0, 12.0, 28.0
#: Revision lines in order: the stable one first, then the candidate (colours of console.css).
CLASSES = ("series-stable", "series-candidate", "series-other")


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float]]  # (seconds since the chart's start, value)
    css: str = "series-other"
    dots: bool = True  # a dot per point on a short line (off for step lines: two points per bucket)


@dataclass(frozen=True)
class Chart:
    """What a template draws: polylines, axes' labels, and the data as a table for screen readers."""

    title: str
    unit: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    threshold_y: float | None = None
    threshold_label: str = ""
    y_labels: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (series, t, value)
    points: int = 0

    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT


def steps(buckets: list[tuple[float, float]], width: float) -> list[tuple[float, float]]:
    """Time buckets ``(start, value)`` of ``width`` seconds as a step line: each value held over its bucket."""
    return [point for start, value in buckets for point in ((start, value), (start + width, value))]


def seconds(at: str, start: datetime) -> float:
    """``at`` (ISO 8601) as seconds after ``start``."""
    return (parse(at) - start).total_seconds()


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def line_chart(title: str, unit: str, series: list[Series], threshold: float | None = None) -> Chart:
    """``series`` on one chart scaled to their data (and ``threshold``), ``0`` at the bottom."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + ([threshold] if threshold is not None else [])
    x_max = max(max(xs, default=1.0), 1.0)
    y_max = _nice(max(ys, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        return round(LEFT + x / x_max * plot_w, 1), round(TOP + plot_h - y / y_max * plot_h, 1)

    lines = []
    for one in series:
        placed = [at(x, y) for x, y in one.points]
        if placed:
            lines.append({"label": one.label, "css": one.css, "points": " ".join(f"{x},{y}" for x, y in placed),
                          "dots": placed if one.dots and len(placed) <= DOTS else []})
    y_labels = [(TOP + plot_h - f * plot_h, _fmt(f * y_max, unit)) for f in (0.0, 0.5, 1.0)]
    x_labels = [(LEFT + f * plot_w, f"{f * x_max:.{0 if x_max >= 10 else 1}f}s") for f in (0.0, 0.5, 1.0)]
    rows = [(s.label, f"{x:.1f}s", _fmt(y, unit)) for s in series for x, y in s.points]
    threshold_y = TOP + plot_h - threshold / y_max * plot_h if threshold is not None else None
    return Chart(title, unit, lines, threshold_y, _fmt(threshold, unit) if threshold is not None else "",
                 y_labels, x_labels, rows, sum(len(s.points) for s in series))


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top`` (1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(top))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= top * (1 - 1e-9))


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.3g} %"
    return f"{value:.3g} {unit}".strip()
