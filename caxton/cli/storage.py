"""``caxton storage verify --data-dir DIR`` and ``caxton storage migrate --from DIR --to URL``: offline storage tools.

``verify`` (a data directory, or a PostgreSQL store with ``--store-url``): the schema, integrity of the
store and the memory, every blob (spec, WASM module) against
its sha256, every revision's blobs present, and the orphan blobs. Exit 0 when
sound (orphans are listed, not failures), 1 otherwise. The work is done by
``caxton.engine.state.storage`` (needs the engine extra).

``migrate``: copy a stopped embedded engine's store and memory into PostgreSQL in one
transaction, verified by row counts and digests (``caxton.engine.state.pgmigrate``;
needs the engine and postgres extras).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caxton.cli.common import Output, OutputOption
from caxton.cli.views import render
from caxton.errors import InvalidInput, StorageDamaged

app = typer.Typer(help="Check the engine's data directory; move it into PostgreSQL.", no_args_is_help=True)


@app.command("verify")
def verify(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="The engine's data directory (embedded store).",
                                                  envvar="CAXTON_DATA_DIR", show_default=False)] = None,
    store_url: Annotated[str | None, typer.Option("--store-url", help="The engine's PostgreSQL store (store.url); "
                                                  "its memory's tables there are checked too.",
                                                  envvar="CAXTON_STORE_URL", show_default=False)] = None,
    memory_path: Annotated[str, typer.Option("--memory-path", help="The memory database, relative to the data "
                                             "directory (memory.sqlite_path).")] = "memory.db",
    output: OutputOption = Output.text,
) -> int:
    """Check the schema, every revision's bytes against their digest and the serial; list orphan blobs (read-only)."""
    from caxton.cli.views.backups import StorageReport
    from caxton.engine.state import storage

    if store_url:
        report = storage.verify_postgres(store_url)
        hint = "restore the database from a backup (pg_dump / continuous archiving), or report it"
    elif data_dir is not None:
        report = storage.verify(data_dir, memory_path)
        hint = "restore the data directory from a backup (`caxton restore`)"
    else:
        raise InvalidInput("nothing to verify", hint="give --data-dir DIR (embedded store) or --store-url "
                           "postgresql://... (CAXTON_DATA_DIR / CAXTON_STORE_URL)")
    render(StorageReport(report, location=report["location"]), output)
    if not report["ok"]:
        raise StorageDamaged(f"{len(report['problems'])} problems in {report['location']}", hint=hint)
    return 0


@app.command("migrate")
def migrate(
    source: Annotated[Path, typer.Option("--from", help="The data directory of the embedded engine to move "
                                         "(stopped: refused while an engine holds it).", show_default=False)],
    url: Annotated[str, typer.Option("--to", help="The PostgreSQL database to move it into "
                                     "(postgresql://USER:PASSWORD@HOST:PORT/DB; it must exist).",
                                     show_default=False)],
    memory_path: Annotated[str, typer.Option("--memory-path", help="The memory database, relative to the data "
                                             "directory (memory.sqlite_path).")] = "memory.db",
    replace: Annotated[bool, typer.Option("--replace", help="When the database already holds Caxton's tables: "
                                          "drop them (their data is lost) and copy in their place.")] = False,
    output: OutputOption = Output.text,
) -> int:
    """Copy an embedded engine's whole state and memory into PostgreSQL (one transaction, verified by digests)."""
    from caxton.cli.views.backups import Migrated
    from caxton.engine.state import pgmigrate

    render(Migrated(pgmigrate.migrate(source, url, memory_path=memory_path, replace=replace)), output)
    return 0
