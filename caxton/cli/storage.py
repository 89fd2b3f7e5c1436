"""``caxton storage verify --data-dir DIR``: check a data directory's databases offline.

Integrity of the store and the memory, every blob (spec, WASM module) against
its sha256, every revision's blobs present, and the orphan blobs. Exit 0 when
sound (orphans are listed, not failures), 1 otherwise. The work is done by
``caxton.engine.state.storage`` (needs the engine extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caxton.cli.common import Output, OutputOption
from caxton.cli.views import render
from caxton.errors import StorageDamaged

app = typer.Typer(help="Check the engine's data directory.", no_args_is_help=True)


@app.command("verify")
def verify(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The engine's data directory.",
                                           envvar="CAXTON_DATA_DIR", show_default=False)],
    memory_path: Annotated[str, typer.Option("--memory-path", help="The memory database, relative to the data "
                                             "directory (memory.sqlite_path).")] = "memory.db",
    output: OutputOption = Output.text,
) -> int:
    """Check integrity, every revision's bytes against their digest, and list orphan blobs (read-only)."""
    from caxton.cli.views.backups import StorageReport
    from caxton.engine.state import storage

    report = storage.verify(data_dir, memory_path)
    render(StorageReport(report, data_dir=data_dir), output)
    if not report["ok"]:
        raise StorageDamaged(f"{len(report['problems'])} problems in {data_dir}",
                             hint="restore the data directory from a backup (`caxton restore`)")
    return 0
