"""Words and shapes of rollout progress: windows as JSON, traffic and step summaries as text.

Called by the rollout controller for progress lines and ``status``.
"""

from __future__ import annotations

from typing import Any


def window(snapshot: Any) -> dict[str, Any]:
    return {"requests": snapshot.requests, "errors": snapshot.errors, "error_rate": snapshot.error_rate,
            "p95_latency_ms": snapshot.p95_ms, "compared": snapshot.compared,
            "divergence_rate": snapshot.divergence_rate}


def traffic(weights: dict[str, int]) -> str:
    return ", ".join(f"revision {rev}: {share} %" for rev, share in weights.items())


def summary(measurements: list[dict[str, Any]], step: int) -> str:
    last: dict[str, dict[str, Any]] = {}
    for m in measurements:
        if m["step"] == step:
            last[m["metric"]] = m
    return ", ".join(f"{name} {m['value']} (<= {m['threshold']}, {m['requests']} requests)"
                     if m["comparison"] == "<=" else f"{name} {m['value']} {m['comparison']} {m['threshold']}"
                     for name, m in last.items()) or "no measurement"
