"""Known-answer synthetic streams: the truth they carry must match the events they hold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.analysis.synthetic import FWHM_PER_SIGMA, SyntheticStreams, make_pair_streams


def _small(seed: int) -> SyntheticStreams:
    return make_pair_streams(
        seed,
        duration_s=2.0,
        pair_rate_hz=200.0,
        singles_a_hz=5e3,
        singles_b_hz=4e3,
        offset_ps=1.5e6,
        freq=2e-8,
    )


def test_streams_sorted_int64_and_rates_match() -> None:
    s = make_pair_streams(
        3,
        duration_s=4.0,
        pair_rate_hz=500.0,
        singles_a_hz=2e4,
        singles_b_hz=1e4,
        offset_ps=0.0,
        freq=0.0,
    )
    assert s.t_a.dtype == np.int64
    assert s.t_b.dtype == np.int64
    assert np.all(np.diff(s.t_a) >= 0)
    assert np.all(np.diff(s.t_b) >= 0)
    # Poisson counts: 80k +- 283 and 40k +- 200, 2000 +- 45 pairs (5 sigma bounds).
    assert abs(s.t_a.size - 80_000) < 5 * 283
    assert abs(s.t_b.size - 40_000) < 5 * 200
    assert abs(s.n_pairs - 2000) < 5 * 45


def test_pair_indices_follow_the_offset_model_with_the_stated_jitter() -> None:
    s = make_pair_streams(
        5,
        duration_s=5.0,
        pair_rate_hz=2000.0,
        singles_a_hz=1e4,
        singles_b_hz=1e4,
        offset_ps=-7.3e6,
        freq=4e-7,
        t0_ps=10**13,
        t_ref_ps=10**13 + 2 * 10**12,
        jitter_fwhm_ps=350.0,
    )
    ta, tb = s.t_a[s.pair_a], s.t_b[s.pair_b]
    resid = (tb - ta).astype(np.float64) - s.true_offset(ta)
    expected_sigma = np.sqrt(2.0) * 350.0 / FWHM_PER_SIGMA
    assert abs(float(np.mean(resid))) < 5 * expected_sigma / np.sqrt(resid.size)
    assert abs(float(np.std(resid)) / expected_sigma - 1.0) < 0.05
    assert s.jitter_sigma_ps == pytest.approx(expected_sigma)
    assert float(s.true_offset(10**13 + 2 * 10**12)) == pytest.approx(-7.3e6)


def test_random_walk_pinned_at_reference_and_grows_like_sqrt_time() -> None:
    s = make_pair_streams(
        9,
        duration_s=100.0,
        pair_rate_hz=50.0,
        singles_a_hz=50.0,
        singles_b_hz=50.0,
        offset_ps=0.0,
        freq=0.0,
        random_walk_ps_per_sqrt_s=100.0,
    )
    assert abs(float(s.true_offset(s.t_ref_ps))) < 1e-6
    # Increments over 1 s have sigma 100 ps.
    t = s.rw_t_ps
    idx = np.searchsorted(t, np.arange(1, 100) * 10**12)
    inc = np.diff(s.rw_ps[idx])
    assert 70.0 < float(np.std(inc)) < 130.0


def test_same_seed_same_streams_and_different_seed_differs() -> None:
    a, b, c = _small(1), _small(1), _small(2)
    assert np.array_equal(a.t_a, b.t_a)
    assert np.array_equal(a.t_b, b.t_b)
    assert not np.array_equal(a.t_a, c.t_a)


def test_channels_match_in_equal_bases_up_to_qber() -> None:
    s = make_pair_streams(
        4,
        duration_s=2.0,
        pair_rate_hz=5000.0,
        singles_a_hz=5000.0,
        singles_b_hz=5000.0,
        offset_ps=0.0,
        freq=0.0,
        channels=True,
        qber=0.05,
    )
    assert s.ch_a is not None
    assert s.ch_b is not None
    ca, cb = s.ch_a[s.pair_a], s.ch_b[s.pair_b]
    same_basis = (ca // 2) == (cb // 2)
    err = float(np.mean((ca[same_basis] % 2) != (cb[same_basis] % 2)))
    assert abs(err - 0.05) < 0.015
    other = ~same_basis
    assert abs(float(np.mean((ca[other] % 2) != (cb[other] % 2))) - 0.5) < 0.05


def test_singles_below_pair_rate_rejected() -> None:
    with pytest.raises(ValueError, match="singles"):
        make_pair_streams(
            0,
            duration_s=1.0,
            pair_rate_hz=100.0,
            singles_a_hz=50.0,
            singles_b_hz=500.0,
            offset_ps=0.0,
            freq=0.0,
        )


@settings(max_examples=15, deadline=None)
@given(
    offset=st.floats(-1e9, 1e9),
    freq=st.floats(-1e-5, 1e-5),
    seed=st.integers(0, 2**31),
)
def test_property_every_pair_obeys_the_model(offset: float, freq: float, seed: int) -> None:
    s = make_pair_streams(
        seed,
        duration_s=0.5,
        pair_rate_hz=400.0,
        singles_a_hz=800.0,
        singles_b_hz=800.0,
        offset_ps=offset,
        freq=freq,
        jitter_fwhm_ps=100.0,
    )
    ta, tb = s.t_a[s.pair_a], s.t_b[s.pair_b]
    resid = (tb - ta).astype(np.float64) - s.true_offset(ta)
    # 100 ps FWHM per detector: difference sigma 60 ps; 7 sigma + rounding never exceeded.
    assert np.all(np.abs(resid) < 7 * 60.1 + 2)
