"""``caxton up``: the zero-setup default: an embedded engine plus a reconcile loop over ./agents.

Starts the engine in this process (``caxton.engine``: store in ``--data-dir``,
the HTTP API served by uvicorn in a thread), prints where the API is, then
runs the reconcile loop (``caxton.reconcile``) in the main thread over the
current project (its git branch when it is a git work tree, else the files
as they are) or ``--source``, printing what each pass applied. SIGTERM or
Ctrl-C: the loop finishes its step, the API stops accepting requests,
in-flight messages drain, the engine closes its store; exit 0. SIGHUP reloads
the engine's settings (``caxton.engine.serving.reload``), as for ``caxton server start``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from caxton.cli import reconcile as reconcile_cli
from caxton.cli import server as server_cli
from caxton.cli.common import (
    BranchOption,
    EngineConfigOption,
    EngineDataDirOption,
    HostOption,
    InsecureOption,
    IntervalOption,
    PathOption,
    PollOption,
    PortOption,
    SourceOption,
    UncommittedOption,
    echo,
    note,
    require_project,
    seconds,
)

if TYPE_CHECKING:
    from caxton.engine.core import Engine
    from caxton.reconcile.loop import Settings
    from caxton.reconcile.passes import PassOutcome, Target
    from caxton.reconcile.sources import Source
    from caxton.spec.project import ProjectConfig

def up(
    source: SourceOption = ".",
    branch: BranchOption = None,
    path: PathOption = None,
    data_dir: EngineDataDirOption = None,
    port: PortOption = None,
    host: HostOption = None,
    config: EngineConfigOption = None,
    interval: IntervalOption = "30s",
    poll_interval: PollOption = "500ms",
    uncommitted: UncommittedOption = False,
    insecure_no_auth: InsecureOption = False,
) -> int:
    """Run an embedded engine and keep it equal to ./agents (or --source) until Ctrl-C."""
    server_cli.require_engine()
    from caxton.engine import config as engine_config
    from caxton.reconcile import sources
    from caxton.reconcile.passes import Target

    if path is None and not sources.is_url(source):
        require_project(Path(source), hint="run in a desired-state repository (start one with `caxton init`), "
                        "or pass --source DIR (or --path DIR for the agents inside it)")
    settings = engine_config.server_settings(config, host=host, port=port, data_dir=data_dir)
    if settings.config.server.tls.enabled:
        note("warning: caxton up serves plain http and ignores server.tls; run `caxton server start` for TLS")
    opened = sources.open_source(source, branch=branch, path=path, data_dir=settings.data_dir,
                                 uncommitted=uncommitted, poll=seconds(poll_interval, "--poll-interval"))
    loop_settings = reconcile_cli.make_settings(interval, None, prune=True, allow_delete_all=False, timeout=600.0)
    def reread() -> ProjectConfig:
        return engine_config.server_settings(config, host=host, port=port, data_dir=data_dir).config

    with _embedded(settings.config, settings.data_dir, reread, insecure_no_auth) as (url, engine, token):
        return _watch(opened, Target(url, token), loop_settings, engine.data_dir)


def _watch(source: Source, target: Target, settings: Settings, data_dir: Path) -> int:
    """Announce, then reconcile until SIGTERM/SIGINT; the handlers are in place before the announcement,
    so a supervisor that signals as soon as it reads the API line gets a clean stop (exit 0)."""
    from caxton.reconcile.loop import Loop

    stop = threading.Event()
    loop = Loop(source, [target], settings, on_pass=_announcer())
    with reconcile_cli.stop_on_signals(stop, loop):
        echo(f"caxton engine API at {target.url}/api/v1 (data dir {data_dir})")
        echo(f"reconciling {source.description}; stop with Ctrl-C")
        sys.stdout.flush()
        try:
            loop.run(stop)
        finally:
            source.close()
    echo("stopping the engine")
    return 0


def _announcer() -> Callable[[PassOutcome], None]:
    """Says on stdout what each pass applied (the loop's log on stderr has the details)."""
    from caxton.cli.views.reconcile import announced

    passes_seen: list[str] = []

    def announce(outcome: PassOutcome) -> None:
        for line in announced(outcome, first=not passes_seen):
            echo(line)
        passes_seen.append(outcome.outcome)
        sys.stdout.flush()

    return announce


@contextmanager
def _embedded(
    config: ProjectConfig, data_dir: Path, reread: Callable[[], ProjectConfig], insecure_no_auth: bool,
) -> Iterator[tuple[str, Engine, str | None]]:
    """The engine started in this process by the server's own start-up (``caxton.engine.server.embedded``:
    its API and metrics listener served by threads); stopped on exit.

    Yields its URL, the engine and the token its reconcile loop uses (an in-process admin token
    named "caxton-up" when tokens are configured, never written anywhere).
    """
    from caxton.engine import server

    reconcile_cli.setup_logging()
    engine = server.Engine(config, data_dir)
    with server.embedded(engine, host=config.server.host, port=config.server.port, settings=reread,
                         insecure_no_auth=insecure_no_auth, internal="caxton-up") as serving:
        if serving.metrics_url is not None:
            echo(f"caxton metrics at {serving.metrics_url}/metrics")
        yield serving.url, engine, serving.internal_token
