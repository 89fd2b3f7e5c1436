"""HTTP routes of backups: ``POST /api/v1/backups`` (create one now) and ``GET /api/v1/backups/{name}`` (download).

Mounted by ``caxton.engine.http.app.create_app``; the work is done by
``caxton.engine.backup``. Archives are written to the data directory's
``backups/`` folder. Both routes need the ``admin`` role
(``caxton.engine.auth.ROUTE_ROLES``). Used by ``caxton backup create``
through ``caxton.client.backups``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import FileResponse

from caxton.engine import backup
from caxton.engine.http.openapi import errors
from caxton.spec import api as wire
from caxton.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from caxton.engine.core import Engine

PREFIX = "/api/v1"
ARCHIVE_TYPES = ("application/gzip", "application/x-tar")
_NAME = re.compile(r"^caxton-[0-9TZ]+\.tar(\.gz)?$")


def create(engine: Engine) -> dict[str, Any]:
    """Write an archive of ``engine`` to ``<data dir>/backups/`` now (after a scheduled one in progress);
    return its manifest, name and path."""
    out = engine.data_dir / backup.BACKUP_DIR / backup.default_name()
    manifest = engine.backups.run(out, "api")
    return {**manifest, "name": out.name, "path": str(out)}


def mount(app: FastAPI, engine: Engine) -> None:
    """Add ``/api/v1/backups`` routes to ``app``."""

    @app.post(PREFIX + "/backups", tags=["backups"], response_model=wire.BackupManifest)
    def create_backup() -> dict[str, Any]:
        """A consistent archive of the store, the memory and the modules, taken while serving."""
        return create(engine)

    @app.get(PREFIX + "/backups/{name}", tags=["backups"], response_class=FileResponse, responses={
        200: {"description": "the archive", "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                                      for media in ARCHIVE_TYPES}},
        **errors(400, 404)})
    def download_backup(name: str) -> FileResponse:
        """The archive ``name`` (as returned by POST /api/v1/backups)."""
        if not _NAME.match(name):
            raise InvalidInput(f"{name!r} is not a backup name",
                               hint="names look like caxton-20260101T000000000000Z.tar.gz")
        path = engine.data_dir / backup.BACKUP_DIR / name
        if not path.is_file():
            raise NotFound(f"no backup named {name!r} in {path.parent}", hint="create one with `caxton backup create`")
        return FileResponse(path, media_type=ARCHIVE_TYPES[0] if name.endswith(".gz") else ARCHIVE_TYPES[1],
                            filename=name)
