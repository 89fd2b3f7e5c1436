"""Capped exponential backoff with jitter, and the watch loop's retries on it (in simulated time)."""

from __future__ import annotations

import random
from pathlib import Path

from caxton.reconcile import sources
from caxton.reconcile.backoff import Backoff, spread
from caxton.reconcile.loop import Settings
from caxton.reconcile.passes import PassOutcome, Target
from caxton.reconcile.status import iso
from tests.reconcile.conftest import running_loop, wait_for
from tests.support.clock import ManualClock
from tests.support.git import DesiredRepo
from tests.support.paths import free_port


def test_backoff_doubles_until_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=10.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_stays_within_its_fraction_and_varies() -> None:
    backoff = Backoff(base=4.0, cap=4.0, jitter=0.25, rng=random.Random(7))
    delays = [backoff.delay(3) for _ in range(200)]
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100


def test_spread_never_goes_negative() -> None:
    assert spread(0.0, 0.5) == 0.0
    assert all(spread(1.0, 1.0, random.Random(seed)) >= 0.0 for seed in range(50))


def test_the_loop_retries_an_unreachable_engine_on_the_backoff_then_at_its_cap(
    desired_repo: DesiredRepo, tmp_path: Path,
) -> None:
    clock = ManualClock()
    passes: list[tuple[float, str]] = []

    def seen(outcome: PassOutcome) -> None:
        passes.append((clock.monotonic(), outcome.outcome))

    source = sources.open_source(str(desired_repo.root), branch="main", path=None, data_dir=tmp_path / "c", poll=0.05)
    settings = Settings(interval=300.0, backoff_base=1.0, backoff_cap=8.0, jitter=0.0, refresh=1000.0)
    dead = Target(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with running_loop(source, [dead], settings, clock=clock, on_pass=seen) as loop:
        wait_for(lambda: passes, what="the first pass")
        clock.settle()
        began = passes[0][0]
        for _ in range(40):
            clock.advance(1.0)
            clock.settle()
        assert [(round(at - began), outcome) for at, outcome in passes] == [
            (0, "unreachable"), (1, "unreachable"), (3, "unreachable"), (7, "unreachable"),  # 1, 2, 4 s
            (15, "unreachable"), (23, "unreachable"), (31, "unreachable"), (39, "unreachable"),  # 8 s: the cap
        ]
        assert loop.status.state == "error" and loop.status.retries == 8 and not loop.status.held
        assert loop.status.next_attempt_at == iso(clock.time() + 7.0)  # now is 40 s: the retry of 39 s + 8 s
