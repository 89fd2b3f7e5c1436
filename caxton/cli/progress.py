"""Apply progress for people: one live line per agent on a terminal (rich), plain lines elsewhere.

``caxton apply`` relays the engine's progress events (``agent``, ``action``,
``status``, ``message``, ``duration_ms``) to one of these printers. On a
terminal every agent of the plan gets a line that is redrawn in place (a
spinner while its change runs, then a mark and the time it took); in CI, or
when stdout is piped, each event is one plain line, as logs want them; with
``--output json``, each event is one JSON object per line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from caxton.cli.common import echo
from caxton.cli.views import emit_event

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

#: How a finished change is marked; anything else is still running (or waiting).
MARKS = {"done": ("✓", "green"), "unchanged": ("✓", "green"), "failed": ("✗", "red"),
         "rolled_back": ("↺", "yellow"), "interrupted": ("✗", "red"), "superseded": ("⤳", "yellow")}


def live_wanted() -> bool:
    """A live display only on an interactive terminal that can redraw lines (not in CI)."""
    return sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb" and not os.environ.get("CI")


def printer(as_json: bool, changes: Iterable[tuple[str, str]]) -> JsonLines | LiveLines | PlainLines:
    """The printer for ``caxton apply``: JSON events, live lines on a terminal, else plain lines."""
    if as_json:
        return JsonLines()
    rows = list(changes)
    return LiveLines(rows) if rows and live_wanted() else PlainLines()


class _Printer:
    """A printer is a context manager (the live one draws while it is open) and a callable per event."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        return None


class JsonLines(_Printer):
    """Each event as ``{"event": "progress", ...}`` on its own line."""

    def __call__(self, event: dict[str, Any]) -> None:
        emit_event("progress", **event)


class PlainLines(_Printer):
    """Each event with an agent as one line: ``agent: message [N ms]``."""

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("agent"):
            took = f" [{event['duration_ms']:.0f} ms]" if event.get("duration_ms") is not None else ""
            echo(f"{event['agent']}: {event['message']}{took}")
            sys.stdout.flush()


@dataclass
class _Row:
    action: str
    status: str = "pending"
    message: str = "waiting"
    started: float | None = None
    duration_ms: float | None = None


class LiveLines(_Printer):
    """One line per agent of the plan, redrawn in place while the engine applies it."""

    def __init__(self, changes: Iterable[tuple[str, str]]) -> None:
        self.rows = {agent: _Row(action) for agent, action in changes}
        self._live: Live | None = None

    def __enter__(self) -> Self:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(self.render(), console=Console(), refresh_per_second=10, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.__exit__(kind, error, trace)
            self._live = None

    def __call__(self, event: dict[str, Any]) -> None:
        agent = event.get("agent")
        if not agent:
            return
        row = self.rows.setdefault(str(agent), _Row(str(event.get("action") or "")))
        row.status = str(event.get("status") or row.status)
        row.message = str(event.get("message") or row.message)
        if row.started is None and row.status != "pending":
            row.started = time.monotonic()
        if event.get("duration_ms") is not None:
            row.duration_ms = float(event["duration_ms"])
        if self._live is not None:
            self._live.update(self.render())

    def render(self) -> RenderableType:
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        for agent, row in self.rows.items():
            mark: RenderableType
            if row.status in MARKS:
                symbol, style = MARKS[row.status]
                mark = Text(symbol, style=style)
            elif row.status == "pending":
                mark = Text("·", style="dim")
            else:
                mark = Spinner("dots", style="cyan")
            table.add_row(mark, Text(agent, style="bold"), Text(row.action, style="dim"), Text(row.message),
                          Text(self._took(row), style="dim"))
        return table

    @staticmethod
    def _took(row: _Row) -> str:
        if row.duration_ms is not None:
            return f"{row.duration_ms:.0f} ms"
        if row.started is not None and row.status not in MARKS:
            return f"{time.monotonic() - row.started:.1f} s"
        return ""
