"""Scheduled backups (issue 13, item 1): the ``backups:`` section of caxton.yaml.

In-process engines with an injected wall clock drive ``Backups.tick`` without
waiting for the interval: a backup is taken when due and verifies, retention
and max_age prune only after a new archive is verified, a failure is logged
and counted while the engine keeps serving, an admin's backup and a scheduled
one never run at once, and SIGHUP's hook takes a new schedule. Then a real
engine process on a 1 s schedule, checked through /metrics, promtool and
``caxton backup verify``, whose directory is broken by a SIGHUP reload.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from caxton import metrics
from caxton.client import agents as agent_api
from caxton.client import status as status_api
from caxton.engine import backup
from caxton.engine.core import Engine
from caxton.spec.project import ProjectConfig
from tests.conftest import CliResult
from tests.engine.helpers import SCORER_WASM, config_spec, wasm_spec
from tests.operations.test_metrics import promtool, samples, value, wait_for
from tests.support.engine import EngineProcess, running_engine

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def settings(**backups: Any) -> ProjectConfig:
    return ProjectConfig.model_validate({"memory": {"enabled": False}, "backups": backups})


@pytest.fixture
def make_clocked_engine(tmp_path: Path) -> Iterator[Callable[..., tuple[Engine, Clock]]]:
    """A started in-process engine serving a WASM and a config agent, its backups on a fake clock."""
    engines: list[Engine] = []

    def make(config: ProjectConfig) -> tuple[Engine, Clock]:
        engine = Engine(config, tmp_path / "data")
        clock = Clock()
        engine.backups.clock = clock
        engine.backups.background = False  # the test ticks
        engine.start()
        engines.append(engine)
        engine.deploy(wasm_spec("scorer"), SCORER_WASM)
        engine.deploy(config_spec("summariser"), None)
        return engine, clock

    yield make
    for engine in engines:
        engine.stop()


def archives(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if backup.ARCHIVE_NAME.match(p.name))


def counted(trigger: str, outcome: str) -> float:
    return metrics.sample_value("caxton_backups_total", {"trigger": trigger, "outcome": outcome}) or 0.0


def test_a_due_backup_is_taken_verifies_and_retention_prunes_only_after_a_new_one(
    make_clocked_engine: Callable[..., tuple[Engine, Clock]], tmp_path: Path, run_cli: Callable[..., CliResult],
) -> None:
    engine, clock = make_clocked_engine(settings(interval="1h", directory="nightly", retention=2))
    directory = tmp_path / "data" / "nightly"
    before = counted("schedule", "success")

    assert engine.backups.tick() == 3600  # no archive yet: the first one is due at once
    first = archives(directory)
    assert first == [backup.default_name(engine_time(clock))]
    checked = run_cli("backup", "verify", str(directory / first[0]))
    assert checked.code == 0, checked.err
    assert counted("schedule", "success") == before + 1

    clock.now += 1800
    assert engine.backups.tick() == 1800  # not due: nothing written
    assert archives(directory) == first
    clock.now += 1800
    assert engine.backups.tick() == 3600
    assert len(archives(directory)) == 2
    clock.now += 3600
    assert engine.backups.tick() == 3600
    kept = archives(directory)
    assert len(kept) == 2 and first[0] not in kept  # the oldest went once the third was verified
    for name in kept:
        assert backup.verify(directory / name)["counts"]["agents"] == 2
    assert counted("schedule", "success") == before + 3

    scraped = engine.scrape_view().backup
    assert scraped is not None
    assert scraped.last_success_timestamp == clock.now
    assert scraped.last_size_bytes == (directory / kept[-1]).stat().st_size
    assert scraped.last_duration_seconds is not None and scraped.last_duration_seconds > 0
    assert scraped.interval_seconds == 3600


def engine_time(clock: Clock) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(clock.now, UTC)


def test_max_age_deletes_old_archives_but_keeps_the_newest(
    make_clocked_engine: Callable[..., tuple[Engine, Clock]], tmp_path: Path,
) -> None:
    engine, clock = make_clocked_engine(settings(interval="1h", directory=str(tmp_path / "abs"), retention=10, max_age="2h"))
    for _ in range(4):
        engine.backups.tick()
        clock.now += 3600
    # made at START, +1h, +2h, +3h; at +3h the one of START is past 2 h old
    assert len(archives(tmp_path / "abs")) == 3
    assert not (tmp_path / "data" / "abs").exists()  # an absolute directory is used as it is


def test_the_first_backup_is_due_an_interval_after_the_newest_archive(
    tmp_path: Path, make_clocked_engine: Callable[..., tuple[Engine, Clock]],
) -> None:
    directory = tmp_path / "data" / "backups"
    directory.mkdir(parents=True)
    from datetime import UTC, datetime

    old = directory / backup.default_name(datetime.fromtimestamp(START - 600, UTC))
    old.write_bytes(b"an archive of a previous run")
    engine, clock = make_clocked_engine(settings(interval="1h"))
    assert engine.backups.tick() == pytest.approx(3000)
    assert archives(directory) == [old.name]
    view = engine.scrape_view().backup
    assert view is not None and view.last_success_timestamp == START - 600  # adopted: not stale after a restart


def test_a_failed_backup_is_logged_and_counted_and_the_engine_keeps_serving(
    make_clocked_engine: Callable[..., tuple[Engine, Clock]], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the backups directory should be")
    engine, clock = make_clocked_engine(settings(interval="10m", directory=str(blocker / "backups")))
    before = counted("schedule", "failure")
    with caplog.at_level(logging.ERROR, "caxton.engine.backup_schedule"):
        assert engine.backups.tick() == 600
    assert counted("schedule", "failure") == before + 1
    assert f"scheduled backup to {blocker / 'backups'} failed (retrying in 600 s)" in caplog.text
    assert engine.send("scorer", "still serving")["reply"] is not None
    view = engine.scrape_view().backup
    assert view is not None and view.last_success_timestamp is None  # the gauge shows 0: stale
    assert metrics.sample_value("caxton_backup_last_success_timestamp_seconds") == 0
    clock.now += 300
    assert engine.backups.tick() == 300  # the next try is an interval later, not a tight loop


def test_a_reload_takes_a_new_schedule(make_clocked_engine: Callable[..., tuple[Engine, Clock]],
                                       tmp_path: Path) -> None:
    engine, clock = make_clocked_engine(settings())
    assert engine.backups.tick() is None  # no interval: no scheduled backups
    assert engine.scrape_view().backup == metrics.BackupView(None)
    assert metrics.sample_value("caxton_backup_last_success_timestamp_seconds") is None
    engine.reload(settings(interval="30m", directory="later"))
    assert engine.backups.tick() == 1800
    assert len(archives(tmp_path / "data" / "later")) == 1
    clock.now += 600
    engine.reload(settings(interval="20m", directory="later"))
    assert engine.backups.tick() == 600  # the newest archive + the new interval, not the old due time
    engine.reload(settings(directory="later"))
    assert engine.backups.tick() is None  # interval removed: the schedule stops


def test_an_admin_backup_and_a_scheduled_one_never_run_at_once(
    make_clocked_engine: Callable[..., tuple[Engine, Clock]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, _ = make_clocked_engine(settings(interval="1h"))
    inside, most = 0, 0
    guard = threading.Lock()
    real_create = backup.create

    def observed(*args: Any) -> dict[str, Any]:  # the real create, counting how many run at once
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.05)
            return real_create(*args)
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr(backup, "create", observed)
    api_done: list[dict[str, Any]] = []
    threads = [threading.Thread(target=engine.backups.scheduled),
               threading.Thread(target=lambda: api_done.append(engine.backup_now()))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 1
    assert api_done and backup.verify(Path(api_done[0]["path"]))["serial"] == engine.store.serial()


# --- a real engine on a 1 s schedule ------------------------------------------------------------
def write_config(path: Path, directory: str) -> Path:
    path.write_text(f"memory:\n  enabled: false\nbackups:\n  interval: 1s\n  directory: {directory}\n"
                    "  retention: 2\n")
    return path


@pytest.fixture
def scheduled(tmp_path: Path) -> Iterator[EngineProcess]:
    config = write_config(tmp_path / "caxton.yaml", "scheduled")
    with running_engine(tmp_path, config=config) as engine, engine.client() as client:
        agent_api.deploy(client, wasm_spec("scorer"), SCORER_WASM)
        yield engine


def test_a_serving_engine_backs_up_on_schedule_and_survives_a_broken_directory(
    scheduled: EngineProcess, tmp_path: Path, run_cli: Callable[..., CliResult],
) -> None:
    client = scheduled.client()
    directory = scheduled.data_dir / "scheduled"
    scrape = lambda: samples(status_api.metrics(client))  # noqa: E731
    wait_for(lambda: (value(scrape(), "caxton_backups_total", trigger="schedule", outcome="success") or 0) >= 3,
             "three scheduled backups", timeout=30)
    wait_for(lambda: len(archives(directory)) == 2, "retention to keep two archives")
    newest = tmp_path / "newest.tar.gz"  # a copy: retention deletes the archive two seconds later
    shutil.copyfile(directory / archives(directory)[-1], newest)
    checked = run_cli("backup", "verify", str(newest), "--output", "json")
    assert checked.code == 0, checked.err

    text = status_api.metrics(client)
    found = samples(text)
    assert time.time() - 30 < (value(found, "caxton_backup_last_success_timestamp_seconds") or 0) <= time.time()
    assert (value(found, "caxton_backup_last_size_bytes") or 0) > 0
    assert (value(found, "caxton_backup_last_duration_seconds") or 0) > 0
    assert value(found, "caxton_backup_interval_seconds") == 1
    assert value(found, "caxton_backups_total", trigger="schedule", outcome="failure") == 0
    checked_metrics = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                                     timeout=60, check=False)
    assert checked_metrics.returncode == 0, checked_metrics.stdout + checked_metrics.stderr

    (tmp_path / "blocker").write_text("a file, not a directory")
    assert scheduled.config is not None
    write_config(scheduled.config, str(tmp_path / "blocker" / "backups"))
    assert scheduled.proc is not None
    scheduled.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: (value(scrape(), "caxton_backups_total", trigger="schedule", outcome="failure") or 0) >= 2,
             "two failed scheduled backups", timeout=30)
    assert "scheduled backup to " in scheduled.log_text() and "failed (retrying in 1 s)" in scheduled.log_text()
    assert status_api.health(client).status == "healthy"
    assert agent_api.send(client, "scorer", "still serving").reply is not None
    assert scheduled.running
