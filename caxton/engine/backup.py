"""Online backups of a data directory: create (while serving), verify, restore.

An archive is a tar (gzip-compressed when its name ends in ``.gz``/``.tgz``)
with ``manifest.json`` first, then ``engine.db`` (the store: agents,
revisions, events, rollouts, and the module artifacts, which live content-
addressed in its ``blobs`` table) and, when the engine has one, the memory
database. ``module-cache/`` is not archived: it is compiled from the blobs.

Consistency. Both databases are copied with SQLite's online backup API
(``Connection.backup``) from read connections of their own. The snapshot of
each starts with a read transaction (``BEGIN`` and a first read); both are
started while the store's and the memory's writer locks are held
(``Store.paused`` and ``memory.Store.lock``, the engine's only writers since
the data directory is held by one process), so no write transaction of
either database is open at that instant: the two snapshots describe one
point in time, whose state serial is read inside the store's snapshot.
Writers are blocked only for the few microseconds it takes to start two
read transactions, not for the copy itself: WAL mode lets them commit while
the backup reads its snapshot (rather than re-reading the serial after the
copy and retrying, which under continuous writes might never converge).

Crash safety. The archive is written to a hidden temporary file beside the
target and renamed only once complete and fsynced: a ``kill -9`` mid-backup
leaves at most a ``.tmp`` file, never an archive under the final name, and
a truncated archive fails ``verify`` (sizes and sha256 of every member).

Restore refuses a data directory an engine holds (``caxton.engine.datadir``)
or one that already holds files (unless ``force``, which moves the old
directory aside), verifies the archive first, builds the new directory
beside the target and renames it into place: on refusal or failure nothing
of the target changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from caxton import __version__
from caxton.engine import datadir
from caxton.engine.state.migrations import MIGRATIONS as STORE_MIGRATIONS
from caxton.engine.state.store import DB_NAME, Store
from caxton.errors import BackupInvalid, BackupTooNew, Conflict, RestoreRefused

if TYPE_CHECKING:
    from caxton.memory.backend import MemoryStore

FORMAT = "caxton-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE_MEMBER = "engine.db"
MEMORY_MEMBER = "memory.db"
BACKUP_DIR = "backups"
_CHUNK = 1 << 20
_STAMP = "%Y%m%dT%H%M%S%fZ"
#: The name ``default_name`` gives an archive (the time it was taken, UTC, to the microsecond).
ARCHIVE_NAME = re.compile(r"^caxton-(\d{8}T\d{12}Z)\.tar(\.gz)?$")


@dataclass(frozen=True)
class MemorySource:
    """The memory database to archive: its file, its path in the data dir, its writer (None when closed)."""

    path: Path
    relative: str
    store: MemoryStore | None = None


def default_name(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime(_STAMP)
    return f"caxton-{stamp}.tar.gz"


def archive_time(name: str) -> float | None:
    """The Unix time in an archive's ``default_name``; None for any other file name."""
    match = ARCHIVE_NAME.match(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC).timestamp()
    except ValueError:  # digits that are no date (month 13...)
        return None


# --- create ------------------------------------------------------------------------------
def create(store: Store, memory: MemorySource | None, out: Path) -> dict[str, Any]:
    """Write a consistent archive of ``store`` (and ``memory``) to ``out``; return its manifest."""
    if store.path is None:
        raise Conflict(f"this engine's state is in PostgreSQL ({store.location}): caxton backups copy the embedded "
                       "SQLite store only", hint="back the database up with PostgreSQL's own tools (pg_dump, or "
                       "continuous archiving); see docs/scale-out.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as tmp:
        work = Path(tmp)
        serial = _snapshot(store, memory, work)
        databases = {"store": _describe(work / STORE_MEMBER, STORE_MEMBER, DB_NAME, "migrations")}
        if memory is not None:
            databases["memory"] = _describe(work / MEMORY_MEMBER, MEMORY_MEMBER, memory.relative, "schema_migrations")
        members = [{"name": d["member"], "size": (work / d["member"]).stat().st_size,
                    "sha256": _sha256_file(work / d["member"])} for d in databases.values()]
        manifest: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "engine_version": __version__,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "serial": serial,
            "databases": databases, "members": members, "counts": _counts(work, memory is not None),
        }
        _write_archive(out, manifest, work)
    manifest["duration_seconds"] = round(time.monotonic() - started, 3)
    manifest["size"] = out.stat().st_size
    return manifest


def _snapshot(store: Store, memory: MemorySource | None, work: Path) -> int:
    """Copy both databases into ``work`` from one instant; return that instant's state serial."""
    from caxton.memory.schema import _sqlite_module

    assert store.path is not None
    sources: list[tuple[Any, Any, Path]] = [
        (sqlite3, sqlite3.connect(store.path, isolation_level=None), work / STORE_MEMBER)]
    if memory is not None:
        module = _sqlite_module()
        sources.append((module, module.connect(str(memory.path), isolation_level=None), work / MEMORY_MEMBER))
    try:
        writer = memory.store.lock if memory is not None and memory.store is not None else contextlib.nullcontext()
        with store.paused(), writer:
            for _module, conn, _target in sources:
                conn.execute("BEGIN")
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the read snapshot starts here
            serial = int(sources[0][1].execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()[0])
        for module, conn, target in sources:
            copy = module.connect(str(target), isolation_level=None)
            try:
                conn.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file per database
            finally:
                copy.close()
    finally:
        for _module, conn, _target in sources:
            conn.close()
    return serial


def _describe(path: Path, member: str, relative: str, table: str) -> dict[str, Any]:
    migrations = _migrations(path, table)
    return {"member": member, "path": relative, "migrations": migrations, "schema_version": len(migrations)}


def _migrations(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        order = "id" if table == "migrations" else "name"
        return [str(row[0]) for row in conn.execute(f"SELECT name FROM {table} ORDER BY {order}")]  # noqa: S608
    finally:
        conn.close()


def _counts(work: Path, with_memory: bool) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{work / STORE_MEMBER}?mode=ro", uri=True)
    try:
        counts = {table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
                  for table in ("agents", "revisions", "blobs", "events")}
    finally:
        conn.close()
    if with_memory:
        conn = sqlite3.connect(f"file:{work / MEMORY_MEMBER}?mode=ro", uri=True)
        try:
            counts["memory_entities"] = int(conn.execute("SELECT COUNT(*) FROM entities").fetchone()[0])
            counts["memory_relations"] = int(conn.execute("SELECT COUNT(*) FROM relations").fetchone()[0])
        finally:
            conn.close()
    return counts


def _write_archive(out: Path, manifest: dict[str, Any], work: Path) -> None:
    """Write the tar beside ``out`` under a temporary name, fsync, and rename it into place."""
    compressed = out.name.endswith((".gz", ".tgz"))
    # gzip level 1: the memory's float vectors barely compress at any level, and gzip is most of the time
    options: dict[str, Any] = {"mode": "w:gz", "compresslevel": 1} if compressed else {"mode": "w"}
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, **options) as tar:
                body = json.dumps(manifest, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(body))
                for member in manifest["members"]:
                    tar.add(work / member["name"], arcname=member["name"], recursive=False)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)


# --- verify ------------------------------------------------------------------------------
def verify(archive: Path) -> dict[str, Any]:
    """Check ``archive`` completely (members, checksums, integrity, schema); return its manifest."""
    with tempfile.TemporaryDirectory(prefix="caxton-verify-") as tmp:
        return _extract_verified(archive, Path(tmp))


def _extract_verified(archive: Path, into: Path) -> dict[str, Any]:
    """Extract the databases of ``archive`` into ``into`` and check them; raise BackupInvalid if anything is off."""
    if not archive.is_file():
        raise BackupInvalid(f"no backup archive at {archive}",
                            hint="give the path of a file `caxton backup create` wrote")
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            manifest = _read_manifest(tar, archive)
            wanted = {m["name"]: m for m in manifest["members"]}
            seen: set[str] = set()
            for info in tar:
                if info.name == MANIFEST:
                    continue
                if info.name not in wanted or info.name in seen or not info.isfile():
                    raise BackupInvalid(f"{archive}: unexpected member {info.name!r}",
                                        hint="this archive was not written by `caxton backup create`")
                seen.add(info.name)
                _extract_member(tar, info, wanted[info.name], into / info.name, archive)
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:  # gzip/zlib errors are OSError/EOFError
        raise BackupInvalid(f"{archive} is truncated or not a tar archive: {error}",
                            hint="the copy may be incomplete: copy the archive again, or use another backup") from error
    missing = sorted(set(wanted) - seen)
    if missing:
        raise BackupInvalid(f"{archive} is truncated: members {', '.join(missing)} are missing",
                            hint="the copy may be incomplete: copy the archive again, or use another backup")
    for database in manifest["databases"].values():
        _check_database(into / database["member"], archive)
    _check_serial(into / STORE_MEMBER, manifest, archive)
    return manifest


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise BackupInvalid(f"{archive} has no {MANIFEST} first",
                            hint="this is not an archive of `caxton backup create`")
    handle = tar.extractfile(first)
    if handle is None:
        raise BackupInvalid(f"{archive}: {MANIFEST} is not a file")
    try:
        manifest = json.loads(handle.read())
        if manifest.get("format") != FORMAT:
            raise BackupInvalid(f"{archive} is not a Caxton backup (format {manifest.get('format')!r})")
        version = int(manifest["format_version"])
        if version > FORMAT_VERSION:
            raise BackupTooNew(
                f"{archive} has backup format {version}, newer than this Caxton's {FORMAT_VERSION} "
                f"(written by engine {manifest.get('engine_version')})",
                hint="verify and restore it with that Caxton version or a newer one")
        _check_schema(manifest, archive)
        for database in manifest["databases"].values():
            relative = PurePosixPath(str(database["path"]))
            if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                raise BackupInvalid(f"{archive}: database path {database['path']!r} leaves the data directory")
        for member in manifest["members"]:
            if PurePosixPath(member["name"]).name != member["name"] or member["name"] == MANIFEST:
                raise BackupInvalid(f"{archive}: member name {member['name']!r} is not allowed")
            int(member["size"]), str(member["sha256"])
        return dict(manifest)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise BackupInvalid(f"{archive}: {MANIFEST} is malformed ({error})",
                            hint="this archive was not written by `caxton backup create`") from error


def _check_schema(manifest: dict[str, Any], archive: Path) -> None:
    from caxton.memory.schema import MIGRATIONS as MEMORY_MIGRATIONS

    known = {"store": [name for name, _ in STORE_MIGRATIONS], "memory": [name for name, _ in MEMORY_MIGRATIONS]}
    for key, database in manifest["databases"].items():
        if key not in known:
            raise BackupTooNew(f"{archive} holds a database {key!r} this Caxton does not know",
                               hint="restore it with the Caxton version that wrote it (engine "
                                    f"{manifest.get('engine_version')}) or a newer one")
        newer = [name for name in database["migrations"] if name not in known[key]]
        if newer:
            raise BackupTooNew(
                f"{archive}: the {key} database has schema migrations newer than this Caxton "
                f"({', '.join(newer)}; written by engine {manifest.get('engine_version')})",
                hint="restore it with that Caxton version or a newer one")
    if "store" not in manifest["databases"]:
        raise BackupInvalid(f"{archive} has no store database",
                            hint="this archive was not written by `caxton backup create`")


def _extract_member(tar: tarfile.TarFile, info: tarfile.TarInfo, expected: dict[str, Any], target: Path,
                    archive: Path) -> None:
    handle = tar.extractfile(info)
    if handle is None:
        raise BackupInvalid(f"{archive}: member {info.name} is not a file")
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != int(expected["size"]) or digest.hexdigest() != expected["sha256"]:
        raise BackupInvalid(
            f"{archive}: member {info.name} does not match the manifest "
            f"(size {size}, expected {expected['size']}; sha256 {digest.hexdigest()[:12]}..., "
            f"expected {str(expected['sha256'])[:12]}...)",
            hint="the archive is corrupted: use another backup")


def _check_database(path: Path, archive: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise BackupInvalid(f"{archive}: {path.name} is not a readable SQLite database: {error}",
                            hint="the archive is corrupted: use another backup") from error
    if rows != ["ok"]:
        raise BackupInvalid(f"{archive}: {path.name} fails its integrity check: {'; '.join(rows[:5])}",
                            hint="the archive is corrupted: use another backup")


def _check_serial(path: Path, manifest: dict[str, Any], archive: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
    except sqlite3.Error as error:
        raise BackupInvalid(f"{archive}: the store has no state serial ({error})") from error
    finally:
        conn.close()
    if row is None or int(row[0]) != int(manifest["serial"]):
        raise BackupInvalid(f"{archive}: the store's serial {None if row is None else row[0]} "
                            f"is not the manifest's {manifest['serial']}", hint="use another backup")


# --- restore -----------------------------------------------------------------------------
def restore(archive: Path, data_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore ``archive`` as ``data_dir``; return the manifest plus where the old directory went.

    Raises DataDirHeld when an engine holds ``data_dir``, RestoreRefused when it
    holds files and ``force`` is false, BackupInvalid when the archive fails verify.
    """
    data_dir = data_dir.absolute()
    with _held(data_dir):
        if _occupied(data_dir) and not force:
            raise RestoreRefused(
                f"data directory {data_dir} is not empty (it holds {', '.join(_listing(data_dir))})",
                hint="restore into a new directory, or pass --force to move this one aside first")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=f".{data_dir.name}.restore-"))
        try:
            manifest = _extract_verified(archive, staging)
            for database in manifest["databases"].values():
                target = staging / database["path"]
                if target != staging / database["member"]:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / database["member"], target)
            for path in staging.rglob("*"):
                if path.is_file():
                    _fsync_file(path)
            moved = _move_aside(data_dir)
            os.replace(staging, data_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _fsync_dir(data_dir.parent)
    return {**manifest, "data_dir": str(data_dir), "moved_aside": None if moved is None else str(moved)}


@contextlib.contextmanager
def _held(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir``'s engine lock during the restore (DataDirHeld if an engine has it); create nothing."""
    if not (data_dir / datadir.LOCK_NAME).exists():
        yield  # no engine ever ran here
        return
    lock = datadir.acquire(data_dir)
    try:
        yield
    finally:
        lock.release()


def _listing(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir() if p.name != datadir.LOCK_NAME)[:5]


def _occupied(data_dir: Path) -> bool:
    return data_dir.exists() and (not data_dir.is_dir() or bool(_listing(data_dir)))


def _move_aside(data_dir: Path) -> Path | None:
    """Rename an existing ``data_dir`` to ``<name>.before-restore-<time>`` (removed when it is empty)."""
    if not data_dir.exists():
        return None
    if not _occupied(data_dir):
        shutil.rmtree(data_dir)
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}")
    os.replace(data_dir, aside)
    return aside


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)
