"""Vectorized detector and clock helpers against direct (slow, obvious) reference models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_hardware.world.clockmodel import StationClock
from sim_hardware.world.config import ClockConfig, DetectorConfig
from sim_hardware.world.detectors import (
    CHANNEL_BITS,
    JITTER_CLIP,
    apply_dead_time_and_afterpulses,
    flagged_positions,
    jitter_ps,
    lost_to_dead_time,
)

PS = 10**12


def _stream(rng: np.random.Generator, n: int, span_ps: int) -> np.ndarray:
    """Sorted keys of ``n`` uniform events on 4 channels, with some exact time ties."""
    t = rng.integers(0, span_ps, n)
    t[: n // 50] = t[n // 50 : 2 * (n // 50)]  # same-ps events, same or other channel
    keys = (t << CHANNEL_BITS) | rng.integers(0, 4, n)
    return np.sort(keys)


def test_dead_time_matches_a_per_channel_loop() -> None:
    """An event is lost iff the previous raw event of its channel is < τ earlier."""
    rng = np.random.default_rng(1)
    dead_ps = 30_000
    keys = _stream(rng, 20_000, 200_000_000)  # 100 Mcps: several events per dead time
    lost = lost_to_dead_time(keys, dead_ps)
    expected = np.zeros(keys.size, dtype=bool)
    last: dict[int, int] = {}
    for i, key in enumerate(keys.tolist()):
        t, ch = key >> CHANNEL_BITS, key & 3
        if ch in last and t - last[ch] < dead_ps:
            expected[i] = True
        last[ch] = t
    assert 0.1 < expected.mean() < 0.9
    assert np.array_equal(lost, expected)


def test_afterpulses_only_from_surviving_parents() -> None:
    rng = np.random.default_rng(2)
    det = DetectorConfig(dead_time_ns=30.0)
    keys = _stream(rng, 5_000, 50_000_000)
    lost = lost_to_dead_time(keys, 30_000)
    parents = keys[rng.choice(keys.size, 400, replace=False)]
    delays = np.full(parents.size, 40_000.0)
    out = apply_dead_time_and_afterpulses(keys, parents, delays, det)
    alive_parents = np.isin(parents, keys[~lost])
    assert np.all(np.diff(out) >= 0)
    assert out.size == np.count_nonzero(~lost) + np.count_nonzero(alive_parents)
    pulses = np.sort(parents[alive_parents] + (40_000 << CHANNEL_BITS))
    assert np.all(np.isin(pulses, out))


def test_jitter_is_a_clipped_gaussian() -> None:
    rng = np.random.default_rng(3)
    sigma = 148.6
    z = jitter_ps(rng, 2_000_001, sigma).astype(np.float64) / sigma
    assert z.size == 2_000_001
    assert np.abs(z).max() <= JITTER_CLIP
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    assert z.std() == pytest.approx(1.0, abs=5 * math.sqrt(2 / z.size))
    for k in (0.5, 1.0, 2.0, 3.0):
        tail = 1.0 - math.erf(k / math.sqrt(2.0))
        assert np.mean(np.abs(z) > k) == pytest.approx(tail, abs=5 * math.sqrt(tail / z.size))


def test_flagged_positions_are_bernoulli() -> None:
    rng = np.random.default_rng(4)
    hits = np.zeros(500)
    for _ in range(4000):
        pos = flagged_positions(rng, 500, 0.02)
        assert np.all(np.diff(pos) > 0)
        assert pos.size == 0 or (pos[0] >= 0 and pos[-1] < 500)
        hits[pos] += 1
    assert hits.sum() == pytest.approx(4000 * 500 * 0.02, rel=0.02)
    chi2 = float(np.sum((hits - 80.0) ** 2 / 80.0))
    assert chi2 < 499 + 5 * math.sqrt(2 * 499)  # uniform over positions
    assert flagged_positions(rng, 7, 1.0).tolist() == list(range(7))
    assert flagged_positions(rng, 7, 0.0).size == 0


def test_clock_readings_match_the_error_model_and_ignore_cuts() -> None:
    cfg = ClockConfig(offset_ns=1200.0, frequency_ppb=15.0, random_walk_ps_per_sqrt_s=20.0)
    origin = 3 * PS + 123_456_789  # ps since the epoch
    t = np.sort(np.random.default_rng(5).integers(0, 2 * PS + PS // 3, 50_000))
    ref = StationClock(cfg, 0.0, seed=7, station_index=0)
    err = ref.error_ps((origin + t) / PS)
    clock = StationClock(cfg, 0.0, seed=7, station_index=0)
    whole = clock.readings_ps(origin, t.copy())
    assert np.abs(whole - (origin + t + err)).max() <= 1.0
    cut = 20_000
    shift = int(t[cut])  # the second part with another origin, as another call would
    parts = np.concatenate(
        [
            clock.readings_ps(origin, t[:cut].copy()),
            clock.readings_ps(origin + shift, t[cut:] - shift),
        ]
    )
    assert np.array_equal(parts, whole)
