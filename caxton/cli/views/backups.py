"""Views of ``caxton backup``, ``caxton restore`` and ``caxton storage verify|migrate``: archives and data directories."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton.cli.views.registry import Shown, json_view, text_view

if TYPE_CHECKING:
    from caxton.spec.api import BackupDownload


@dataclass(frozen=True)
class Verified:
    """An archive checked offline: its manifest (JSON: ``{"ok": true, "path": ..., **manifest}``)."""

    archive: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Restored(Shown):
    """An archive restored into a data directory: what the restore reported."""

    result: dict[str, Any]
    archive: Path


@dataclass(frozen=True)
class StorageReport(Shown):
    """A data directory or a PostgreSQL store checked: the report (``location``: the path, or the redacted URL)."""

    result: dict[str, Any]
    location: str


@dataclass(frozen=True)
class Migrated(Shown):
    """A data directory copied into PostgreSQL: the report (JSON: the report itself)."""

    result: dict[str, Any]


@text_view("BackupDownload")
def created_text(result: BackupDownload) -> list[str]:
    return [f"backup {result.path}: serial {result.serial}, {_counts(result.model_dump())}, {_size(result.size)}"]


@json_view("Verified")
def verified_json(verified: Verified) -> Any:
    return {"ok": True, "path": str(verified.archive), **verified.manifest}


@text_view("Verified")
def verified_text(verified: Verified) -> list[str]:
    manifest = verified.manifest
    return [f"{verified.archive}: ok (serial {manifest['serial']}, engine {manifest['engine_version']}, "
            f"created {manifest['created_at']}, {_counts(manifest)})"]


@text_view("Restored")
def restored_text(restored: Restored) -> Iterator[str]:
    result = restored.result
    yield f"restored {restored.archive} into {result['data_dir']}: serial {result['serial']}, {_counts(result)}"
    if result["moved_aside"]:
        yield f"the previous data directory is at {result['moved_aside']}"


@text_view("StorageReport")
def storage_text(checked: StorageReport) -> Iterator[str]:
    report = checked.result
    counts = report["counts"]
    yield (f"{checked.location}: {'ok' if report['ok'] else 'DAMAGED'} ({counts['agents']} agents, "
           f"{counts['revisions']} revisions, {counts['blobs']} blobs, {len(report['orphans'])} orphan blobs"
           f"{'' if report['memory_checked'] else ', no memory database'})")
    if "memory_entities" in counts:
        yield f"  memory: {counts['memory_entities']} entities"
    for problem in report["problems"]:
        yield f"  problem: {problem}"
    for orphan in report["orphans"]:
        yield f"  orphan blob: {orphan}"


@text_view("Migrated")
def migrated_text(migrated: Migrated) -> Iterator[str]:
    report = migrated.result
    memory = "with its memory" if report["memory"] else "no memory database"
    yield (f"migrated {report['source']} into {report['target']} ({memory}): schema version "
           f"{report['schema_version']}, serial {report['serial']}"
           + (", Caxton's previous tables there replaced" if report["replaced"] else ""))
    width = max(len(f"{t['database']}.{t['table']}") for t in report["tables"])
    for table in report["tables"]:
        name = f"{table['database']}.{table['table']}"
        verdict = "ok" if table["ok"] else f"MISMATCH ({table['target_rows']} rows copied)"
        yield f"  {name:<{width}}  {table['rows']:>7} rows  digest {table['digest'][:16]}  {verdict}"
    for skipped in report["skipped"]:
        yield f"  not copied: store.{skipped['table']}: {skipped['why']}"
    yield "verified: every table's row count and content digest match the source (checked before commit)"


def _counts(manifest: dict[str, Any]) -> str:
    counts = manifest.get("counts", {})
    text = f"{counts.get('agents', 0)} agents, {counts.get('revisions', 0)} revisions"
    if "memory_entities" in counts:
        text += f", {counts['memory_entities']} memory entities"
    return text


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
