"""``caxton backup create [--out FILE] | verify FILE`` and ``caxton restore FILE --data-dir DIR [--force]``.

``create`` asks a running engine for a consistent archive (store, memory,
modules; taken while serving) and downloads it. ``verify`` and ``restore``
work offline on the archive (they need the engine extra); the work is done
by ``caxton.engine.backup``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caxton.cli.common import DEFAULT_ENGINE_URL, EngineOption, Output, OutputOption, TokenOption, connect
from caxton.cli.views import render

app = typer.Typer(help="Back up a serving engine, and check an archive.", no_args_is_help=True)

FileArgument = Annotated[Path, typer.Argument(help="A backup archive (.tar.gz or .tar).", show_default=False)]


@app.command("create")
def create(
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Where to write the archive (default: its name, here).", show_default=False)] = None,
    engine: EngineOption = DEFAULT_ENGINE_URL, token: TokenOption = None, output: OutputOption = Output.text,
) -> int:
    """Archive the engine's store, memory and modules while it serves (admin role), and download it."""
    from caxton.client import backups

    with connect(engine, token, timeout=600.0) as client:
        render(backups.create(client, out), output)
    return 0


@app.command("verify")
def verify(archive: FileArgument, output: OutputOption = Output.text) -> int:
    """Check an archive offline: every member's size and sha256, SQLite integrity, schema readable by this version."""
    from caxton.cli.views.backups import Verified
    from caxton.engine import backup

    render(Verified(archive, backup.verify(archive)), output)
    return 0


def restore(
    archive: FileArgument,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The data directory to restore into.",
                                           envvar="CAXTON_DATA_DIR", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace a data directory that holds files "
                                        "(it is moved aside, not deleted).")] = False,
    output: OutputOption = Output.text,
) -> int:
    """Restore an archive into a data directory (offline: refused while an engine holds it)."""
    from caxton.cli.views.backups import Restored
    from caxton.engine import backup

    render(Restored(backup.restore(archive, data_dir, force=force), archive=archive), output)
    return 0
