"""Unfolded offset/drift search, refinement and tracking on known-answer synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.analysis.errors import NoCorrelation
from station.analysis.offset import (
    pair_differences,
    refine,
    search_offset,
    track_offset,
)
from station.analysis.synthetic import make_pair_streams


@pytest.mark.parametrize(("seed", "offset_ps", "freq"), [(1, 2.3e6, 3e-8), (2, -4.71e6, -4e-8)])
def test_micius_like_offset_and_frequency_recovered(
    seed: int, offset_ps: float, freq: float
) -> None:
    s = make_pair_streams(
        seed,
        duration_s=30.0,
        pair_rate_hz=4.0,
        singles_a_hz=5e3,
        singles_b_hz=5e3,
        offset_ps=offset_ps,
        freq=freq,
        t0_ps=10**12,
    )
    est = search_offset(s.t_a, s.t_b, half_range_ps=10e6, freq_half_range=5e-8)
    truth = float(s.true_offset(est.t_ref_ps))
    assert est.method == "unfolded"
    assert abs(est.offset_ps - truth) < 100.0  # the target; sigma here ~ 20 ps
    assert abs(est.offset_ps - truth) < 5 * est.offset_err_ps
    assert abs(est.freq - freq) < 5 * est.freq_err
    assert est.freq_err < 5e-12
    assert 150.0 < est.width_ps < 280.0  # jitter: sqrt(2) * 350 / 2.355 = 210 ps
    assert est.p_global < 1e-6
    assert est.significance > 5.0
    assert est.trials > 1
    assert abs(est.n_peak - s.n_pairs * 0.954) < 5 * np.sqrt(s.n_pairs) + 5


def test_flat_correlation_raises_no_correlation() -> None:
    s = make_pair_streams(
        3,
        duration_s=30.0,
        pair_rate_hz=0.0,
        singles_a_hz=5e3,
        singles_b_hz=5e3,
        offset_ps=0.0,
        freq=0.0,
    )
    with pytest.raises(NoCorrelation, match="significance"):
        search_offset(s.t_a, s.t_b, half_range_ps=10e6, freq_half_range=5e-8)


def test_wrong_prior_range_raises_no_correlation() -> None:
    s = make_pair_streams(
        4,
        duration_s=20.0,
        pair_rate_hz=4.0,
        singles_a_hz=5e3,
        singles_b_hz=5e3,
        offset_ps=50e6,
        freq=0.0,
    )
    with pytest.raises(NoCorrelation):
        search_offset(s.t_a, s.t_b, half_range_ps=10e6)


def test_empty_stream_and_too_wide_prior_are_clear_errors() -> None:
    s = make_pair_streams(
        5,
        duration_s=10.0,
        pair_rate_hz=4.0,
        singles_a_hz=1e5,
        singles_b_hz=1e5,
        offset_ps=0.0,
        freq=0.0,
    )
    with pytest.raises(NoCorrelation, match="empty"):
        search_offset(s.t_a[:0], s.t_b, half_range_ps=1e6)
    with pytest.raises(ValueError, match="blind_search"):
        search_offset(s.t_a, s.t_b, half_range_ps=1e12)


def test_pps_aided_prior_no_frequency_trials() -> None:
    s = make_pair_streams(
        6,
        duration_s=60.0,
        pair_rate_hz=2.0,
        singles_a_hz=1e4,
        singles_b_hz=1e4,
        offset_ps=37e3,
        freq=3e-10,
    )
    est = search_offset(s.t_a, s.t_b, half_range_ps=100e3, freq_half_range=1e-9)
    assert abs(est.offset_ps - float(s.true_offset(est.t_ref_ps))) < 100.0


def test_refine_recovers_from_a_rough_estimate() -> None:
    s = make_pair_streams(
        7,
        duration_s=10.0,
        pair_rate_hz=100.0,
        singles_a_hz=1e4,
        singles_b_hz=1e4,
        offset_ps=1.0e6,
        freq=2e-9,
    )
    coarse = search_offset(
        s.t_a,
        s.t_b,
        center_ps=1.0e6,
        half_range_ps=50e3,
        freq_half_range=5e-9,
        refine_result=False,
        min_bin_ps=2000.0,
    )
    assert abs(coarse.offset_ps - float(s.true_offset(coarse.t_ref_ps))) < 2000.0
    fine = refine(s.t_a, s.t_b, coarse, window_ps=6000.0)
    assert abs(fine.offset_ps - float(s.true_offset(fine.t_ref_ps))) < 5 * fine.offset_err_ps
    assert abs(fine.freq - 2e-9) < 5 * fine.freq_err
    moved = fine.rereferenced(fine.t_ref_ps + 10**12)
    assert moved.offset_ps == pytest.approx(fine.offset_ps + fine.freq * 1e12)


def test_refine_far_from_the_peak_raises() -> None:
    s = make_pair_streams(
        8,
        duration_s=5.0,
        pair_rate_hz=100.0,
        singles_a_hz=2e3,
        singles_b_hz=2e3,
        offset_ps=0.0,
        freq=0.0,
    )
    est = search_offset(s.t_a, s.t_b, half_range_ps=20e3)
    from dataclasses import replace

    with pytest.raises(NoCorrelation):
        refine(s.t_a, s.t_b, replace(est, offset_ps=5e6), window_ps=1000.0)


def test_tracking_follows_a_random_walk_better_than_a_line() -> None:
    s = make_pair_streams(
        4,
        duration_s=120.0,
        pair_rate_hz=5.0,
        singles_a_hz=1e4,
        singles_b_hz=1e4,
        offset_ps=20e3,
        freq=2e-10,
        random_walk_ps_per_sqrt_s=100.0,
    )
    est = search_offset(s.t_a, s.t_b, half_range_ps=100e3, freq_half_range=1e-9)
    track = track_offset(s.t_a, s.t_b, est, window_ps=3000.0, random_walk_ps_per_sqrt_s=100.0)
    ta = s.t_a[s.pair_a]
    truth = s.true_offset(ta)
    rms_track = float(np.sqrt(np.mean((track.at(ta) - truth) ** 2)))
    rms_line = float(np.sqrt(np.mean((est.at(ta) - truth) ** 2)))
    assert rms_track < 0.6 * rms_line
    assert rms_track < 120.0
    assert track.n_accepted >= 0.95 * s.n_pairs
    assert int(track.seg_n_pairs.sum()) == track.n_accepted
    assert np.all(np.diff(track.seg_t_ps) > 0)
    assert np.all(track.seg_rms_ps < 400.0)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    center=st.floats(-5e4, 5e4),
    half=st.floats(1.0, 3e4),
    freq=st.floats(-1e-4, 1e-4),
)
def test_property_pair_differences_match_brute_force(
    seed: int, center: float, half: float, freq: float
) -> None:
    rng = np.random.default_rng(seed)
    t_a = np.sort(rng.integers(0, 10**6, 60, dtype=np.int64))
    t_b = np.sort(rng.integers(0, 10**6, 80, dtype=np.int64))
    pd = pair_differences(
        t_a, t_b, center_ps=center, half_range_ps=half, freq=freq, t_ref_ps=5 * 10**5
    )
    d_all = (t_b[None, :] - t_a[:, None]).astype(np.float64) - (
        center + freq * (t_a[:, None] - 5 * 10**5).astype(np.float64)
    )
    expected = np.sort(d_all[np.abs(d_all) <= half])
    assert np.allclose(np.sort(pd.d), expected, atol=1e-6)
    assert np.all(np.diff(pd.ia) >= 0)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31), center=st.floats(-1e6, 1e6))
def test_property_flat_data_never_yields_a_peak(seed: int, center: float) -> None:
    # Uncorrelated streams: a detection here would be a false positive (global p < 1e-6).
    s = make_pair_streams(
        seed,
        duration_s=10.0,
        pair_rate_hz=0.0,
        singles_a_hz=5e3,
        singles_b_hz=5e3,
        offset_ps=0.0,
        freq=0.0,
    )
    with pytest.raises(NoCorrelation, match="global p"):
        search_offset(s.t_a, s.t_b, center_ps=center, half_range_ps=2e6, freq_half_range=5e-8)
