"""``caxton applies list | show ID | follow ID``, and how ``caxton apply`` follows an apply.

The engine keeps every apply's record (its changes' results; the progress
lines while it runs). ``list`` shows the recent ones, ``show`` one of them,
``follow`` relays its progress until its outcome, like ``caxton apply`` does
(exit 0 succeeded or superseded, 1 failed or interrupted, 3 rolled back, 4
still in progress at ``--timeout``). A rollout paused for lack of traffic is
never silent: the follower says what it waits for and the exact
``caxton rollout promote|abort NAME`` commands. Ctrl-C stops following only:
the engine carries on, and one line says how to follow it again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from caxton.cli import progress
from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, Output, OutputOption, TokenOption, connect, note
from caxton.cli.views import render
from caxton.errors import ApplyTimeout, CaxtonError, Interrupted, RolledBack

if TYPE_CHECKING:
    from caxton.client.plan_apply import ApplyOutcome
    from caxton.client.transport import EngineClient
    from caxton.spec.api import ApplyLine

app = typer.Typer(help="List, show and follow the engine's applies.", no_args_is_help=True)

IdArgument = Annotated[str, typer.Argument(help="The apply id (printed by `caxton apply`; see `caxton applies list`).")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to follow before giving up (exit 4).")]


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", help="How many applies to show (newest first).")] = 20,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """The most recent applies, newest first: status, who submitted them, their changes."""
    from caxton.cli.views.applies import Applies
    from caxton.client import applies

    with connect(engine, token) as client:
        render(Applies(applies.recent(client, limit)), output)
    return 0


@app.command("show")
def show(apply_id: IdArgument, engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
         output: OutputOption = Output.text) -> int:
    """One apply: its status, each change's result and the progress lines the engine still holds."""
    from caxton.client import applies

    with connect(engine, token) as client:
        render(applies.get(client, apply_id), output)
    return 0


@app.command("follow")
def follow(
    apply_id: IdArgument, timeout: TimeoutOption = 600.0, engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Follow an apply until its outcome (as `caxton apply` does); exit 3 when a rollout rolled back."""
    from caxton.client import applies

    with connect(engine, token) as client:
        view = applies.get(client, apply_id)
        rows = [(r.id, r.action) for r in view.results]
        with progress.printer(output is Output.json, rows) as show_line:
            watch = Watch(show_line, client.base_url, output)
            outcome = follow_to_end(client, apply_id, watch, timeout=timeout)
    return finish(outcome, output)


# --- following, shared with `caxton apply` --------------------------------------------------------
class Watch:
    """Relays progress lines to a printer; says what a paused rollout waits for, once per pause."""

    def __init__(self, show: Callable[[dict[str, Any]], None], engine_url: str, output: Output) -> None:
        self.show, self.engine_url, self.output = show, engine_url, output
        self.paused: set[str] = set()
        self.apply_id: str | None = None

    def submitted(self, apply_id: str) -> None:
        self.apply_id = apply_id

    def __call__(self, line: ApplyLine) -> None:
        from caxton.spec.api import wire

        self.show(wire(line))
        agent = line.agent
        if not agent:
            return
        if line.status != "paused":
            self.paused.discard(agent)
        elif agent not in self.paused:
            self.paused.add(agent)
            self.waiting(agent, line.message)

    def commands(self, agent: str) -> tuple[str, str]:
        where = "" if self.engine_url.rstrip("/") == DEFAULT_ENGINE_URL else f" --engine {self.engine_url}"
        return f"caxton rollout promote {agent}{where}", f"caxton rollout abort {agent}{where}"

    def waiting(self, agent: str, message: str) -> None:
        from caxton.cli.views.applies import Waiting

        render(Waiting(agent, message, *self.commands(agent)), self.output)


def follow_to_end(client: EngineClient, apply_id: str, watch: Watch, *, timeout: float | None,
                  after: int = 0) -> ApplyOutcome:
    """Follow ``apply_id`` to its outcome; on --timeout, list what it waits for (then ApplyTimeout)."""
    from caxton.client import plan_apply

    try:
        return plan_apply.follow(client, apply_id, on_line=watch, timeout=timeout, after=after)
    except ApplyTimeout as error:
        timed_out(error, watch)
        raise
    except KeyboardInterrupt:
        interrupted(apply_id)


def timed_out(error: ApplyTimeout, watch: Watch) -> None:
    """What a timed-out apply still waits for, with the commands that end a paused rollout."""
    from caxton.cli.views.applies import TimedOut
    from caxton.spec.api import ApplyView

    render(TimedOut(ApplyView.model_validate(error.details), watch.commands), watch.output)


def interrupted(apply_id: str) -> NoReturn:
    """Ctrl-C while following: one line, exit 130; the engine carries on."""
    sys.stdout.flush()
    raise Interrupted(f"interrupted: apply {apply_id} goes on on the engine; "
                      f"follow it with `caxton applies follow {apply_id}`")


def finish(outcome: ApplyOutcome, output: Output) -> int:
    """Print an apply's outcome; raise for a failed (1) or rolled-back (3) one."""
    render(outcome, output)
    if outcome.status in ("failed", "interrupted"):
        failed = [r for r in outcome.results if r.status == "failed"]
        for result in failed:
            note(f"error: {result.id}: {result.message}")
        if outcome.reason:  # cut short: the engine running it died, the store went away, an internal error
            raise CaxtonError(f"apply {outcome.apply_id} {outcome.status}: {outcome.reason}",
                              hint="what landed stays; run `caxton plan` to see what is left, `caxton apply` to "
                                   "converge")
        raise CaxtonError(f"apply {outcome.apply_id} {outcome.status}: {len(failed)} change(s) failed",
                          hint="see the engine's events (`caxton agents status NAME`); fix and apply again")
    if outcome.status == "rolled_back":
        raise RolledBack(f"apply {outcome.apply_id} finished, but a rollout was rolled back")
    return 0
