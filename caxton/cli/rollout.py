"""``caxton rollout status [AGENT] [--watch] | promote AGENT | abort AGENT``.

The engine runs every rollout (canary, gradual, blue-green, ab-test,
shadow); these commands read its progress (step, traffic, each measurement
with its threshold and verdict) or end it early. ``status --watch AGENT``
follows until the rollout finishes and exits 3 when it rolled back.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli.common import (
    DEFAULT_ENGINE_URL,
    EngineOption,
    Output,
    OutputOption,
    TokenOption,
    echo,
    emit_json,
)
from caxton.errors import RolledBack

if TYPE_CHECKING:
    from caxton.spec.api import Measurement, RolloutView, RolloutWindow

app = typer.Typer(help="Follow, promote or abort the engine's rollouts.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Agent name (any case).")]


@app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="Agent name (default: every agent).", show_default=False)] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until the rollouts shown have finished.")] = False,
    every: Annotated[float, typer.Option("--every", help="Seconds between refreshes with --watch.")] = 1.0,
    limit: Annotated[int, typer.Option("--limit", help="How many rollouts to show.")] = 5,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Show rollouts: strategy, step, traffic, live windows and every measurement (value, threshold, verdict)."""
    from caxton.client import rollouts
    from caxton.client.engine import EngineClient

    shown = ""
    with EngineClient(engine, token=token) as client:
        while True:
            found = rollouts.status(client, name, limit=limit)
            text = render_json(found) if output is Output.json else render(found)
            if text != shown:
                sys.stdout.write(text)
                sys.stdout.flush()
                shown = text
            if not watch or not _active(found, name):
                break
            time.sleep(max(every, 0.1))
    if watch and name and found and found[0].status == "rolled_back":
        raise RolledBack(f"rollout {found[0].id} of {found[0].name} rolled back: {found[0].reason}")
    return 0


def _active(found: list[RolloutView], name: str | None) -> bool:
    """Whether a watch goes on: the agent's newest rollout (or any rollout) is still active."""
    from caxton.spec.api import ROLLOUT_ACTIVE as ACTIVE

    if name:
        return bool(found) and found[0].status in ACTIVE
    return any(r.status in ACTIVE for r in found)


@app.command("promote")
def promote(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
            output: OutputOption = Output.text) -> int:
    """Skip the remaining steps: all traffic to the new revision now; the old one is drained and stopped."""
    from caxton.client import rollouts
    from caxton.client.engine import EngineClient

    with EngineClient(engine, token=token) as client:
        result = rollouts.promote(client, name)
    _done(result, output)
    return 0


@app.command("abort")
def abort(name: NameArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
          output: OutputOption = Output.text) -> int:
    """Roll back now: all traffic to the stable revision; the new one is drained and stopped."""
    from caxton.client import rollouts
    from caxton.client.engine import EngineClient

    with EngineClient(engine, token=token) as client:
        result = rollouts.abort(client, name)
    _done(result, output)
    return 0


def _done(result: RolloutView, output: Output) -> None:
    if output is Output.json:
        emit_json(result)
    else:
        echo(f"{result.name}: rollout {result.id} {result.status.replace('_', ' ')}: {result.reason}")


# --- rendering ---------------------------------------------------------------------------------
def render_json(found: list[RolloutView]) -> str:
    import json

    from caxton.spec.api import wire

    return json.dumps({"rollouts": [wire(r) for r in found]}, indent=2, default=str) + "\n"


def render(found: list[RolloutView]) -> str:
    if not found:
        return "no rollouts\n"
    return "\n".join(_one(r) for r in found)


def _one(r: RolloutView) -> str:
    from caxton.spec.api import ROLLOUT_ACTIVE as ACTIVE

    steps = r.steps
    step = f"step {r.step + 1}/{len(steps)} ({steps[r.step]})" if steps else ""
    lines = [
        f"{r.name}: {r.strategy} rollout {r.id} {r.status.replace('_', ' ').upper()}"
        + (f" at {step}" if r.status in ACTIVE else ""),
        f"  revisions: {r.stable_revision} (stable) -> {r.candidate_revision} ({r.candidate_version})",
        "  traffic:   " + (", ".join(f"revision {k}: {v} %" for k, v in r.weights.items()) or "-"),
        f"  started:   {r.started_at[:19].replace('T', ' ')} by {r.actor or 'engine'}"
        + (f"; finished {r.finished_at[:19].replace('T', ' ')}" if r.finished_at else ""),
    ]
    if r.reason:
        lines.append(f"  reason:    {r.reason}")
    if r.live:
        lines.append(f"  live:      candidate {_window(r.live.candidate)} | stable {_window(r.live.stable)}")
    lines.extend(_measurements(r.measurements))
    return "\n".join(lines) + "\n"


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
            for m in found[-12:]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    table = ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    more = [f"  ({len(found) - 12} earlier measurement(s): --output json)"] if len(found) > 12 else []
    return ["  measurements:", *more, *table]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
