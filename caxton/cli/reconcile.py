"""``caxton reconcile [--watch]``, ``caxton reconcile status`` and ``caxton reconcile trigger``.

Thin: resolve the source (``caxton.reconcile.sources``) and the engines
(``--engine``, or ``--env NAME`` from caxton.yaml), then either run one pass
that follows its apply to the end and exit with apply's exit code (0 applied
or in sync, 1 error or invalid, 3 rolled back), or, with ``--watch``, run the
loop (which submits and never follows a rollout) until SIGTERM/SIGINT (which
finish the current step and exit 0). ``status`` renders the loop's state and
each agent's SYNC/HEALTH (``caxton.cli.views.reconcile``); ``trigger`` is the webhook.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli.common import (
    BranchOption,
    CloneDirOption,
    DEFAULT_ENGINE_URL,
    EngineOption,
    IntervalOption,
    Output,
    OutputOption,
    PathOption,
    PollOption,
    SourceOption,
    TokenOption,
    UncommittedOption,
    connect,
    seconds,
)
from caxton.cli.views import render
from caxton.errors import CaxtonError, InvalidInput, RolledBack

if TYPE_CHECKING:
    from caxton.reconcile.loop import Loop, Settings
    from caxton.reconcile.passes import PassOutcome, Target
    from caxton.reconcile.sources import Source

EXAMPLES = """\b
Examples:
  caxton reconcile                        one pass of the directory here
  caxton reconcile --watch --branch main  follow the branch until Ctrl-C
  caxton reconcile --env staging          each engine of staging in turn
  caxton reconcile status                 what the loop last reported
"""

app = typer.Typer(help="Keep the engine equal to a git branch or a directory (once, or --watch).",
                  epilog=EXAMPLES, invoke_without_command=True)

def setup_logging(level: int = logging.INFO) -> None:
    """The loop's log lines go to stderr, one per line, with a timestamp."""
    logger = logging.getLogger("caxton.reconcile")
    logger.setLevel(level)
    if not any(getattr(h, "_caxton", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s reconcile: %(message)s", "%H:%M:%S"))
        handler._caxton = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    for noisy in ("httpx", "watchfiles"):  # a line per HTTP request or file event is noise here
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def reconcile(
    ctx: typer.Context,
    source: SourceOption = ".",
    branch: BranchOption = None,
    path: PathOption = None,
    engine: EngineOption = DEFAULT_ENGINE_URL,
    token: TokenOption = None,
    env: Annotated[str | None, typer.Option(
        "--env", help="Apply to each engine of this caxton.yaml environment in turn (stops at the first failure).",
        show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="caxton.yaml naming the environments (default: ./caxton.yaml).", show_default=False)] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep reconciling until SIGTERM/SIGINT.")] = False,
    interval: IntervalOption = "30s",
    poll_interval: PollOption = "500ms",
    max_backoff: Annotated[str | None, typer.Option(
        "--max-backoff", help="Longest wait between retries of a failed pass (default: --interval).",
        show_default=False)] = None,
    uncommitted: UncommittedOption = False,
    data_dir: CloneDirOption = Path(".caxton"),
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Never delete agents missing from the source.")] = False,
    allow_delete_all: Annotated[bool, typer.Option(
        "--allow-delete-all", help="Allow a pass that deletes every agent on the engine.")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="One pass: seconds to follow its apply. --watch: seconds for the engine to accept one "
        "(the loop never follows rollouts).")] = 600.0,
) -> int:
    """Plan and apply the source on the engine (one pass, or --watch to keep converging)."""
    if ctx.invoked_subcommand is not None:
        return 0
    from caxton.client import urls
    from caxton.reconcile import environments, sources
    from caxton.reconcile.passes import Target

    setup_logging()
    targets = [Target(urls.normalise(engine), token)]
    if env is not None:
        wave = environments.load(environments.find_config(config, source), env, token)
        targets, branch = wave.targets, branch or wave.branch
    opened = sources.open_source(source, branch=branch, path=path, data_dir=data_dir, uncommitted=uncommitted,
                                 poll=seconds(poll_interval, "--poll-interval"))
    settings = make_settings(interval, max_backoff, prune=not no_prune, allow_delete_all=allow_delete_all,
                             timeout=timeout)
    if watch:
        return watch_until_signal(opened, targets, settings)
    return _once(opened, targets, settings)


def make_settings(interval: str, max_backoff: str | None, *, prune: bool, allow_delete_all: bool,
                  timeout: float) -> Settings:
    from caxton.reconcile.loop import Settings
    from caxton.reconcile.passes import Options

    every = seconds(interval, "--interval")
    if every <= 0:
        raise InvalidInput("--interval must be positive", hint="e.g. --interval 30s")
    cap = seconds(max_backoff, "--max-backoff") if max_backoff else None
    return Settings(interval=every, backoff_cap=cap,
                    options=Options(prune=prune, allow_delete_all=allow_delete_all, apply_timeout=timeout))


def _once(source: Source, targets: list[Target], settings: Settings) -> int:
    """One pass that follows its apply to the end, like `caxton apply` (exit 3 when it rolled back)."""
    from dataclasses import replace

    from caxton.reconcile.loop import Loop

    loop = Loop(source, targets, replace(settings, options=replace(settings.options, wait=True)))
    try:
        outcome = loop.once()
    finally:
        loop.close()
        source.close()
    render(outcome, Output.text)
    return exit_code(outcome)


def exit_code(outcome: PassOutcome) -> int:
    if outcome.ok:
        return 0
    if outcome.outcome == "rolled_back":
        raise RolledBack(f"revision {outcome.commit or outcome.revision} was rolled back: {outcome.message}")
    raise CaxtonError(f"reconcile {outcome.outcome}: {outcome.message}",
                      hint="see `caxton reconcile status`; fix the source (or the engine) and run again")


def watch_until_signal(source: Source, targets: list[Target], settings: Settings) -> int:
    """Run the loop until SIGTERM or SIGINT; the step in progress finishes; exit 0."""
    from caxton.reconcile.loop import Loop

    stop = threading.Event()
    loop = Loop(source, targets, settings)
    with stop_on_signals(stop, loop):
        try:
            loop.run(stop)
        finally:
            source.close()
    return 0


@contextmanager
def stop_on_signals(stop: threading.Event, loop: Loop | None = None) -> Iterator[list[int]]:
    """SIGTERM and SIGINT set ``stop`` (and wake ``loop``) instead of raising; restored afterwards."""
    received: list[int] = []

    def handler(signum: int, _: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        if loop is not None:
            loop.poke("stop")

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@app.command("status")
def status(engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
           output: OutputOption = Output.text) -> int:
    """Show the reconcile loop's state and each agent's SYNC/HEALTH (Argo CD style), as the loop sees them now."""
    from caxton.client import reconcile as board

    with connect(engine, token) as client:
        render(board.read(client), output)
    return 0


@app.command("trigger")
def trigger(engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None,
            reason: Annotated[str | None, typer.Option("--reason", help="Shown in the status.")] = None) -> int:
    """Ask the reconcile loop for a pass now (what a git host's webhook does: POST /api/v1/reconcile)."""
    from caxton.client import reconcile as board

    with connect(engine, token) as client:
        render(board.trigger(client, reason), Output.text)
    return 0
