"""Capped exponential backoff with jitter."""

from __future__ import annotations

import random

from caxton.reconcile.backoff import Backoff, spread


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
