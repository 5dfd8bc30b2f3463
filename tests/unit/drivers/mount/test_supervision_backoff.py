"""Backoff arithmetic of the shared reconnect policy (drivers.supervision)."""

from __future__ import annotations

import random

import pytest

from drivers.supervision import Backoff


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0, jitter=0.0)
    rng = random.Random(0)
    assert [b.delay_s(k, rng) for k in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_stays_in_band_and_varies() -> None:
    b = Backoff(initial_s=1.0, max_s=1.0, jitter=0.2)
    rng = random.Random(42)
    delays = [b.delay_s(3, rng) for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert max(delays) - min(delays) > 0.2  # not in lockstep


def test_backoff_huge_attempt_number_does_not_overflow() -> None:
    assert Backoff(0.5, 30.0, 0.0).delay_s(10_000, random.Random(0)) == 30.0


@pytest.mark.parametrize(
    ("initial", "maximum", "jitter"), [(0.0, 1.0, 0.1), (2.0, 1.0, 0.1), (0.5, 1.0, 1.0)]
)
def test_backoff_rejects_bad_settings(initial: float, maximum: float, jitter: float) -> None:
    with pytest.raises(ValueError, match=r"backoff|jitter"):
        Backoff(initial, maximum, jitter)
