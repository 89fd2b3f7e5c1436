"""Client side of backups: ask the engine for an archive, download it.

Called by ``caxton backup create`` (``caxton.cli.backup``). Verify and
restore are offline and live in ``caxton.engine.backup``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from caxton.client.transport import EngineClient
from caxton.spec import api


def create(client: EngineClient, out: Path | None) -> api.BackupDownload:
    """Have the engine write an archive now; download it to ``out`` (default: its name, here)."""
    manifest = client.call(api.BackupManifest, "POST", "/backups")
    target = out if out is not None else Path(manifest.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    size = client.download(f"/backups/{quote(manifest.name, safe='')}", target)
    return api.BackupDownload.model_validate(
        {**api.wire(manifest), "engine_path": manifest.path, "path": str(target), "size": size})
