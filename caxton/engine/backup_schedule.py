"""The backups an engine takes: one at a time, on its schedule (``backups:`` in caxton.yaml) or for an admin.

``Engine`` owns one ``Backups`` (``engine.backups``). ``run`` writes one archive
with ``caxton.engine.backup.create`` under a lock, so a backup an admin asks for
(``POST /api/v1/backups``, ``caxton.engine.http.backups``) and a scheduled one never
run at once, and records the metrics: ``caxton_backups_total{trigger,outcome}``
and the last good backup's time, duration and size (``view``, shown at scrape
time by ``caxton.metrics.StateCollector``).

The schedule. A background thread calls ``tick``, which takes a backup when one
is due and says how long to wait. The first is due ``interval`` after the newest
archive already in the directory (at once when there is none), then ``interval``
after each attempt, good or failed. A scheduled archive is verified
(``backup.verify``: checksums, integrity, serial) before retention deletes
anything: then only the newest ``retention`` archives of the directory are kept
(``caxton-<time>.tar.gz`` names, however they were made), and with ``max_age``
none older than that, except the newest. A failure (unwritable directory, full
disk, an archive that fails verify) is logged and counted, never raised: the
engine keeps serving and tries again ``interval`` later.

SIGHUP: ``configure`` (an ``Engine.on_reload`` hook) takes the new ``backups``
settings and wakes the thread, which recomputes the due time from them.
``clock`` (wall time) is injectable and the thread can be left out
(``background``), so tests drive ``tick`` themselves without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from caxton import metrics
from caxton.engine import backup
from caxton.errors import storage_fault

if TYPE_CHECKING:
    from caxton.engine.state.store import Store
    from caxton.engine.storage_health import StorageFaults
    from caxton.memory.service import MemoryService
    from caxton.spec.project import BackupSettings, ProjectConfig


class Engine(Protocol):
    """What backups need of the engine (``caxton.engine.core.Engine`` is it)."""

    config: ProjectConfig
    data_dir: Path
    memory: MemoryService | None
    storage_faults: StorageFaults

    @property
    def store(self) -> Store: ...

log = logging.getLogger(__name__)

#: Seconds the thread waits after an unexpected error of ``tick`` itself (a bug, not a failed backup).
_AFTER_ERROR = 60.0


def memory_source(engine: Engine) -> backup.MemorySource | None:
    """The engine's memory database (open or not) as a backup source; None when there is none."""
    if engine.config.memory.backend == "postgres":
        return None  # in PostgreSQL: backed up with the database (pg_dump), not in the data dir
    configured = Path(engine.config.memory.sqlite_path)
    path = engine.data_dir / configured
    if engine.memory is None and not path.is_file():
        return None
    try:
        relative = path.relative_to(engine.data_dir).as_posix()
    except ValueError:
        relative = configured.name  # a memory file outside the data dir is restored into it
    return backup.MemorySource(path, relative, None if engine.memory is None else engine.memory.store)


class Backups:
    """One engine's backups: ``run`` one now, ``tick`` the schedule, ``view`` for the metrics."""

    def __init__(self, engine: Engine, settings: BackupSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self.settings = settings
        #: Wall time (Unix seconds): archive names, due times and the last-success gauge use it.
        self.clock = clock
        #: Whether ``start`` runs the schedule in a thread (tests call ``tick`` themselves instead).
        self.background = True
        self._running = threading.Lock()  # one backup at a time, whoever asks
        self._wake = threading.Condition()
        self._changed = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._due: float | None = None
        self._generation = 0  # bumped by configure: a tick started before must not set the due time
        self.last_success: float | None = None
        self.last_duration: float | None = None
        self.last_size: int | None = None

    @property
    def directory(self) -> Path:
        """Where scheduled archives go: ``backups.directory``, relative to the data directory unless absolute."""
        configured = Path(self.settings.directory)
        return configured if configured.is_absolute() else self._engine.data_dir / configured

    # --- one backup ----------------------------------------------------------------------
    def run(self, out: Path, trigger: str, *, verify: bool = False) -> dict[str, Any]:
        """Write an archive to ``out`` now (after any backup in progress); return its manifest.

        With ``verify``, the archive is checked as ``caxton backup verify`` does (and deleted when it fails).
        Counts the outcome under ``trigger``; a failure is raised to the caller after it is counted.
        """
        with self._running:
            try:
                manifest = backup.create(self._engine.store, memory_source(self._engine), out)
                if verify:
                    _verified(out)
            except BaseException:
                metrics.BACKUPS.labels(trigger, "failure").inc()
                raise
            self.last_success = self.clock()
            self.last_duration = float(manifest["duration_seconds"])
            self.last_size = int(manifest["size"])
            metrics.BACKUPS.labels(trigger, "success").inc()
            return manifest

    # --- the schedule --------------------------------------------------------------------
    def tick(self) -> float | None:
        """Take the scheduled backup when it is due; return the seconds until the next (None: no schedule)."""
        interval = self.settings.interval
        if interval is None:
            self._due = None
            return None
        if self._due is None:
            newest = self._archives()[-1:]
            self._due = newest[0][0] + interval if newest else self.clock()
        now = self.clock()
        if now < self._due:
            return self._due - now
        generation = self._generation
        self.scheduled()
        with self._wake:
            if generation == self._generation:  # else configure reset it: the new settings decide
                self._due = self.clock() + interval
        return interval

    def scheduled(self) -> Path | None:
        """One scheduled backup: write, verify, then prune by retention; the archive, or None when it failed."""
        out = self.directory / backup.default_name(datetime.fromtimestamp(self.clock(), UTC))
        try:
            manifest = self.run(out, "schedule", verify=True)
        except Exception as error:  # noqa: BLE001 - a failed backup must never take the engine down
            fault = storage_fault(error)
            if fault is not None:  # a full or read-only backup volume degrades health as a failed request does
                self._engine.storage_faults.note(fault)
                error = fault
            reason = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            interval = self.settings.interval  # None when a reload just removed the schedule
            log.error("scheduled backup to %s failed (retrying in %s s): %s", out.parent,
                      "no" if interval is None else f"{interval:g}", reason)
            return None
        log.info("scheduled backup %s: serial %s, %d bytes, %.3f s", out, manifest["serial"], manifest["size"],
                 manifest["duration_seconds"])
        self.prune(keep=out)
        return out

    def prune(self, *, keep: Path) -> list[Path]:
        """Delete the archives past ``retention`` (and ``max_age``) in the directory, never ``keep``; return them."""
        archives = self._archives()
        doomed = [path for _, path in archives[:-self.settings.retention]]
        if self.settings.max_age is not None:
            oldest = self.clock() - self.settings.max_age
            doomed += [path for created, path in archives[:-1] if created < oldest and path not in doomed]
        deleted = []
        for path in doomed:
            if path == keep:
                continue
            try:
                path.unlink()
            except OSError as error:
                log.warning("could not delete the old backup %s: %s", path, error)
                continue
            deleted.append(path)
            log.info("deleted the old backup %s (backups.retention %d)", path, self.settings.retention)
        return deleted

    def _archives(self) -> list[tuple[float, Path]]:
        """The archives of the directory, oldest first, with the time in their names."""
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return []
        found = [(created, path) for path in entries if (created := backup.archive_time(path.name)) is not None]
        return sorted(found)

    # --- the thread ----------------------------------------------------------------------
    def start(self) -> None:
        """Adopt the newest archive as the last good backup, and start the schedule's thread."""
        self._adopt_newest()
        self._stopping = False
        if not self.background:
            return
        self._thread = threading.Thread(target=self._loop, name="caxton-backups", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after the backup in progress, if any)."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def configure(self, config: ProjectConfig) -> None:
        """``Engine.on_reload`` hook: follow the new ``backups`` settings from now on."""
        new = config.backups
        with self._wake:
            if new != self.settings:
                log.info("backups: %s", _describe(new))
            self.settings = new
            self._due = None
            self._generation += 1
            self._changed = True
            self._wake.notify_all()
        self._adopt_newest()

    def _adopt_newest(self) -> None:
        if self.last_success is not None or self.settings.interval is None:
            return
        for created, path in reversed(self._archives()):
            try:
                self.last_size = path.stat().st_size
            except OSError:
                continue  # deleted meanwhile
            self.last_success = created
            return

    def _loop(self) -> None:
        while True:
            try:
                delay = self.tick()
            except Exception:  # noqa: BLE001 - the schedule must outlive its own bugs
                log.exception("backups: the schedule failed; trying again in %g s", _AFTER_ERROR)
                delay = _AFTER_ERROR
            with self._wake:
                self._wake.wait_for(lambda: self._stopping or self._changed, timeout=delay)
                if self._stopping:
                    return
                self._changed = False

    def view(self) -> metrics.BackupView:
        return metrics.BackupView(last_success_timestamp=self.last_success, last_duration_seconds=self.last_duration,
                                  last_size_bytes=self.last_size, interval_seconds=self.settings.interval)


def _verified(archive: Path) -> None:
    """``backup.verify`` the new ``archive``; one that fails is deleted (it must not pass for a good backup)."""
    try:
        backup.verify(archive)
    except BaseException:
        archive.unlink(missing_ok=True)
        raise


def _describe(settings: BackupSettings) -> str:
    if settings.interval is None:
        return "no scheduled backups"
    age = f", none older than {settings.max_age:g} s" if settings.max_age is not None else ""
    return (f"every {settings.interval:g} s to {settings.directory}, keeping {settings.retention}{age}")
