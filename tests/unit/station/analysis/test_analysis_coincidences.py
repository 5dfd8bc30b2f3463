"""Coincidence matching, accidentals, delay histogram, window choice and the 4x4 matrix.

Known answers come from synthetic streams built here (pairs with a known delay on a
Poisson background) and from a plain-Python statement of the matching rule.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.datatypes import ChannelMap
from station.analysis.coincidences import (
    accidentals,
    count_matrix,
    histogram,
    match,
    window_from_width,
)

I64 = npt.NDArray[np.int64]


def reference_match(ta: list[int], tb: list[int], window: int, shift: int) -> list[tuple[int, int]]:
    """The rule as written in the module docstring, in the plainest possible Python."""
    half = window // 2
    first_free = 0
    out: list[tuple[int, int]] = []
    for i, t in enumerate(ta):
        c = t + shift
        cands = [k for k in range(first_free, len(tb)) if abs(tb[k] - c) <= half]
        if cands:
            best = min(cands, key=lambda k: (abs(tb[k] - c), k))
            out.append((i, best))
            first_free = best + 1
    return out


def test_known_answer_small() -> None:
    ta = np.array([0, 100, 1_000, 5_000], dtype=np.int64)
    tb = np.array([10, 90, 1_050, 9_000], dtype=np.int64)
    p = match(ta, tb, window_ps=120)
    assert p.idx_a.tolist() == [0, 1, 2]
    assert p.idx_b.tolist() == [0, 1, 2]
    assert p.dt_ps.tolist() == [10, -10, 50]
    # A narrower window (±40 ps) drops the 50 ps pair; ±60 keeps it: the edge is inclusive.
    assert len(match(ta, tb, window_ps=80)) == 2
    assert len(match(ta, tb, window_ps=100)) == 3


def test_nearest_partner_wins_and_each_event_used_once() -> None:
    ta = np.array([1_000], dtype=np.int64)
    tb = np.array([900, 980, 1_030], dtype=np.int64)
    p = match(ta, tb, window_ps=400)
    assert p.idx_b.tolist() == [1]  # 20 ps beats 100 ps and 30 ps
    # Two A events around one B event: only one of them gets it.
    p2 = match(np.array([0, 10], dtype=np.int64), np.array([5], dtype=np.int64), window_ps=100)
    assert len(p2) == 1
    # Tie (equal distance): the earlier B event is taken.
    p3 = match(np.array([100], dtype=np.int64), np.array([90, 110], dtype=np.int64), window_ps=50)
    assert p3.idx_b.tolist() == [0]


def test_shift_recovers_all_isolated_pairs() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    ta = np.cumsum(rng.integers(100_000, 1_000_000, n)).astype(np.int64)
    shift = 123_456_789
    jitter = rng.integers(-400, 401, n)
    tb = ta + shift + jitter
    p = match(ta, tb, window_ps=800, shift_ps=shift)
    assert len(p) == n
    np.testing.assert_array_equal(p.idx_a, np.arange(n))
    np.testing.assert_array_equal(p.dt_ps, jitter)
    # Without the shift only accidentals remain: n²·(window + 1)/T ≈ 7 expected.
    expected_acc = n * n * 801 / float(ta[-1] - ta[0])
    assert len(match(ta, tb, window_ps=800, shift_ps=0)) < expected_acc + 5 * math.sqrt(
        expected_acc
    )


@settings(max_examples=150, deadline=None)
@given(
    ta=st.lists(st.integers(0, 2_000), max_size=40).map(sorted),
    tb=st.lists(st.integers(0, 2_000), max_size=40).map(sorted),
    window=st.integers(1, 300),
    shift=st.integers(-200, 200),
)
def test_matches_plain_python_rule(ta: list[int], tb: list[int], window: int, shift: int) -> None:
    p = match(
        np.array(ta, dtype=np.int64), np.array(tb, dtype=np.int64), window_ps=window, shift_ps=shift
    )
    expected = reference_match(ta, tb, window, shift)
    assert list(zip(p.idx_a.tolist(), p.idx_b.tolist(), strict=True)) == expected
    # Invariants: inside the window, order preserving, dt consistent with the times.
    assert np.all(np.abs(p.dt_ps) <= window // 2)
    assert np.all(np.diff(p.idx_a) > 0)
    assert np.all(np.diff(p.idx_b) > 0)
    if len(p):
        np.testing.assert_array_equal(
            p.dt_ps, np.array(tb)[p.idx_b] - np.array(ta)[p.idx_a] - shift
        )


def test_rejects_unsorted_and_bad_window() -> None:
    good = np.array([0, 10, 20], dtype=np.int64)
    with pytest.raises(ValueError, match="t_a must be sorted"):
        match(np.array([0, 20, 10], dtype=np.int64), good, window_ps=5)
    with pytest.raises(ValueError, match="t_b must be sorted"):
        match(good, np.array([0, 20, 10], dtype=np.int64), window_ps=5)
    with pytest.raises(ValueError, match="window_ps"):
        match(good, good, window_ps=0)
    with pytest.raises(TypeError, match="integer picoseconds"):
        match(good.astype(np.float64), good, window_ps=5)


def test_empty_streams() -> None:
    empty = np.array([], dtype=np.int64)
    assert len(match(empty, np.array([1, 2], dtype=np.int64), window_ps=10)) == 0
    assert len(match(np.array([1, 2], dtype=np.int64), empty, window_ps=10)) == 0


def _poisson(rng: np.random.Generator, rate_hz: float, duration_ps: int) -> I64:
    n = rng.poisson(rate_hz * duration_ps * 1e-12)
    return np.sort(rng.integers(0, duration_ps, n)).astype(np.int64)


def test_accidentals_match_singles_times_window() -> None:
    """Uncorrelated streams: accidentals per window = R_A·R_B·τ·T (physics.md §4)."""
    rng = np.random.default_rng(11)
    duration = 2 * 10**12  # 2 s
    ra, rb, window = 200e3, 300e3, 2_000
    ta, tb = _poisson(rng, ra, duration), _poisson(rng, rb, duration)
    disp = [sign * k * 20_000 for k in range(1, 11) for sign in (1, -1)]
    est = accidentals(ta, tb, window_ps=window, displacements_ps=disp)
    # Integer window ±1000 ps inclusive covers window + 1 ps.
    expected = len(ta) * len(tb) / duration * (window + 1)
    assert abs(est.mean - expected) < 5 * math.sqrt(expected / len(disp))
    assert est.sigma_mean == pytest.approx(math.sqrt(est.counts.sum()) / len(disp))
    # Flat Poisson background: the scatter across windows is ≈ sqrt(mean).
    assert 0.5 * math.sqrt(est.mean) < est.std < 1.5 * math.sqrt(est.mean)
    assert est.counts.shape == (len(disp),)
    assert est.times_ps.shape == (int(est.counts.sum()),)
    assert np.all(np.diff(est.times_ps) >= 0)
    # The true window of uncorrelated streams is itself just one more accidental window.
    true = len(match(ta, tb, window_ps=window))
    assert abs(true - est.mean) < 5 * math.sqrt(expected)


def test_accidentals_exclude_the_peak_and_give_a_matrix() -> None:
    rng = np.random.default_rng(5)
    duration = 10**12
    pairs = _poisson(rng, 50e3, duration)
    ta = np.sort(np.concatenate([pairs, _poisson(rng, 100e3, duration)]))
    ch_b_pairs = rng.integers(0, 4, pairs.size).astype(np.uint8)
    tb_pairs = pairs + 7_000 + rng.integers(-300, 301, pairs.size)
    tb_bg = _poisson(rng, 100e3, duration)
    tb_all = np.concatenate([tb_pairs, tb_bg])
    cb_all = np.concatenate([ch_b_pairs, rng.integers(0, 4, tb_bg.size).astype(np.uint8)])
    order = np.argsort(tb_all, kind="stable")
    tb, cb = tb_all[order], cb_all[order]
    ca = rng.integers(0, 4, ta.size).astype(np.uint8)
    cmap = ChannelMap(h=0, v=1, d=2, a=3)
    est = accidentals(
        ta,
        tb,
        window_ps=1_000,
        displacements_ps=[20_000, -20_000, 40_000, -40_000],
        shift_ps=7_000,
        ch_a=ca,
        ch_b=cb,
        channels_a=cmap,
        channels_b=cmap,
    )
    expected = ta.size * tb.size / duration * 1_001
    assert abs(est.mean - expected) < 5 * math.sqrt(expected)  # the 50k pairs are not in it
    assert est.matrix is not None
    assert est.matrix.sum() == pytest.approx(est.mean)
    assert len(match(ta, tb, window_ps=1_000, shift_ps=7_000)) > 0.99 * pairs.size


def test_accidentals_reject_overlapping_displacement_and_partial_channels() -> None:
    t = np.arange(10, dtype=np.int64)
    with pytest.raises(ValueError, match="overlap the true window"):
        accidentals(t, t, window_ps=1_000, displacements_ps=[20_000, 800])
    with pytest.raises(ValueError, match="needs ch_a"):
        accidentals(t, t, window_ps=10, displacements_ps=[100], ch_a=np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="at least one"):
        accidentals(t, t, window_ps=10, displacements_ps=[])


@settings(max_examples=60, deadline=None)
@given(
    ta=st.lists(st.integers(0, 5_000), max_size=30).map(sorted),
    tb=st.lists(st.integers(0, 5_000), max_size=30).map(sorted),
    half_bins=st.integers(1, 20),
    bin_ps=st.integers(1, 50),
    shift=st.integers(-300, 300),
)
def test_histogram_equals_brute_force(
    ta: list[int], tb: list[int], half_bins: int, bin_ps: int, shift: int
) -> None:
    half = half_bins * bin_ps
    edges, counts = histogram(
        np.array(ta, dtype=np.int64),
        np.array(tb, dtype=np.int64),
        half_range_ps=half,
        bin_ps=bin_ps,
        shift_ps=shift,
    )
    d = np.subtract.outer(np.array(tb, dtype=np.int64), np.array(ta, dtype=np.int64)) - shift
    brute, _ = np.histogram(d.ravel(), bins=edges)
    # np.histogram closes the last bin on the right; ours is half-open [−H, +H).
    brute[-1] -= int(np.count_nonzero(d.ravel() == half))
    np.testing.assert_array_equal(counts, brute)
    assert edges[0] == -half
    assert edges[-1] == half


def test_histogram_finds_the_peak_width() -> None:
    """The peak's measured σ through the histogram gives back the generated jitter."""
    rng = np.random.default_rng(2)
    n = 20_000
    ta = np.cumsum(rng.integers(50_000, 150_000, n)).astype(np.int64)
    sigma = 350.0
    tb = np.sort(ta + 2_000 + np.round(rng.normal(0, sigma, n)).astype(np.int64))
    edges, counts = histogram(ta, tb, half_range_ps=4_000, bin_ps=50, shift_ps=2_000)
    centres = (edges[:-1] + edges[1:]) / 2
    mean = float(np.sum(centres * counts) / counts.sum())
    width = math.sqrt(float(np.sum((centres - mean) ** 2 * counts) / counts.sum()))
    assert abs(mean) < 20
    assert width == pytest.approx(math.sqrt(sigma**2 + 50**2 / 12), rel=0.05)
    window = window_from_width(width)
    p = match(ta, tb, window_ps=window, shift_ps=2_000)
    assert len(p) / n > 0.995  # ±3σ keeps 99.7 %


def test_histogram_rejects_bad_binning() -> None:
    t = np.arange(5, dtype=np.int64)
    with pytest.raises(ValueError, match="multiple of bin_ps"):
        histogram(t, t, half_range_ps=100, bin_ps=30)
    with pytest.raises(ValueError, match="sorted"):
        histogram(t[::-1].copy(), t, half_range_ps=100, bin_ps=10)


def test_window_from_width() -> None:
    assert window_from_width(100.0) == 600
    assert window_from_width(100.2, k=2.0) == 401
    assert window_from_width(0.01) == 1
    with pytest.raises(ValueError, match="sigma_ps"):
        window_from_width(0.0)
    with pytest.raises(ValueError, match="k must"):
        window_from_width(100.0, k=-1)


def test_count_matrix_follows_channel_orders() -> None:
    # Station A: H=4, V=5, D=6, A=7; station B wired differently: H=2, V=0, D=3, A=1.
    ca_map = ChannelMap(h=4, v=5, d=6, a=7)
    cb_map = ChannelMap(h=2, v=0, d=3, a=1)
    ca = np.array([4, 4, 5, 6, 7, 7, 9], dtype=np.uint8)  # 9: a sync channel, ignored
    cb = np.array([2, 0, 0, 3, 1, 3, 2], dtype=np.uint8)
    m = count_matrix(ca, cb, ca_map, cb_map)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = 1  # H-H
    expected[0, 1] = 1  # H-V
    expected[1, 1] = 1  # V-V
    expected[2, 2] = 1  # D-D
    expected[3, 3] = 1  # A-A
    expected[3, 2] = 1  # A-D
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == np.int64
    with pytest.raises(ValueError, match="equal length"):
        count_matrix(ca, cb[:-1], ca_map, cb_map)
