"""HTTP routes of backups: ``POST /api/v1/backups`` (create one now) and ``GET /api/v1/backups/{name}`` (download).

Mounted by ``caxton.engine.http.app.create_app``; the work is done by
``caxton.engine.backup`` (``Engine.backup_now``). Archives are written to the data directory's
``backups/`` folder. Both routes need the ``admin`` role
(``caxton.engine.auth.ROUTE_ROLES``). Used by ``caxton backup create``
through ``caxton.client.backups``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from caxton.engine.http.deps import EngineDep, router as new_router
from caxton.engine.http.openapi import errors
from caxton.spec import api as wire
from caxton.errors import InvalidInput, NotFound

ARCHIVE_TYPES = ("application/gzip", "application/x-tar")
_NAME = re.compile(r"^caxton-[0-9TZ]+\.tar(\.gz)?$")


def routes() -> APIRouter:
    """The ``/api/v1/backups`` routes."""
    router = new_router()

    @router.post("/backups", tags=["backups"], response_model=wire.BackupManifest)
    def create_backup(engine: EngineDep) -> dict[str, Any]:
        """A consistent archive of the store, the memory and the modules, taken while serving."""
        return engine.backup_now()

    @router.get("/backups/{name}", tags=["backups"], response_class=FileResponse, responses={
        200: {"description": "the archive", "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                                      for media in ARCHIVE_TYPES}},
        **errors(400, 404)})
    def download_backup(name: str, engine: EngineDep) -> FileResponse:
        """The archive ``name`` (as returned by POST /api/v1/backups)."""
        if not _NAME.match(name):
            raise InvalidInput(f"{name!r} is not a backup name",
                               hint="names look like caxton-20260101T000000000000Z.tar.gz")
        path = engine.backup_file(name)
        if not path.is_file():
            raise NotFound(f"no backup named {name!r} in {path.parent}", hint="create one with `caxton backup create`")
        return FileResponse(path, media_type=ARCHIVE_TYPES[0] if name.endswith(".gz") else ARCHIVE_TYPES[1],
                            filename=name)

    return router
