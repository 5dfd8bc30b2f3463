"""Blind (lab) offset search: folded FFT with frequency trials, then zoom and refinement."""

from __future__ import annotations

import pytest

from station.analysis.errors import NoCorrelation
from station.analysis.offset import blind_search
from station.analysis.offset_fft import fft_search
from station.analysis.synthetic import make_pair_streams


@pytest.mark.parametrize(
    ("seed", "offset_ps", "freq"), [(1, 37.2e9, 23e-6), (2, -151.7e9, -71e-6), (3, 4.1e6, 0.0)]
)
def test_blind_finds_ms_offset_and_ppm_frequency(seed: int, offset_ps: float, freq: float) -> None:
    s = make_pair_streams(
        seed,
        duration_s=1.0,
        pair_rate_hz=2e4,
        singles_a_hz=2e5,
        singles_b_hz=2e5,
        offset_ps=offset_ps,
        freq=freq,
        t0_ps=5 * 10**12,
    )
    est = blind_search(s.t_a, s.t_b)
    truth = float(s.true_offset(est.t_ref_ps))
    assert est.method == "fft"
    assert abs(est.offset_ps - truth) < 5 * est.offset_err_ps + 1.0
    assert est.offset_err_ps < 5.0  # ~20k pairs x 210 ps
    assert abs(est.freq - freq) < 5 * est.freq_err + 1e-12
    assert est.p_global < 1e-6
    assert est.trials > 1
    assert 150.0 < est.width_ps < 280.0


def test_fft_stage_alone_is_within_a_bin() -> None:
    s = make_pair_streams(
        4,
        duration_s=1.0,
        pair_rate_hz=2e4,
        singles_a_hz=2e5,
        singles_b_hz=2e5,
        offset_ps=-12.345e9,
        freq=55e-6,
        t0_ps=0,
    )
    coarse = fft_search(s.t_a, s.t_b, bin_ps=1e6)
    assert abs(coarse.est.offset_ps - float(s.true_offset(coarse.est.t_ref_ps))) < 1.5e6
    assert abs(coarse.est.freq - 55e-6) <= coarse.freq_step
    assert coarse.seg_lo_ps < coarse.est.t_ref_ps < coarse.seg_hi_ps


def test_blind_flat_data_raises_no_correlation() -> None:
    s = make_pair_streams(
        5,
        duration_s=1.0,
        pair_rate_hz=0.0,
        singles_a_hz=2e5,
        singles_b_hz=2e5,
        offset_ps=0.0,
        freq=0.0,
    )
    with pytest.raises(NoCorrelation, match=r"blind FFT search.*significance"):
        blind_search(s.t_a, s.t_b, segment_ps=20e9)


def test_blind_offset_outside_range_not_reported_as_found() -> None:
    s = make_pair_streams(
        6,
        duration_s=1.0,
        pair_rate_hz=2e4,
        singles_a_hz=2e5,
        singles_b_hz=2e5,
        offset_ps=150e9,
        freq=0.0,
    )
    with pytest.raises(NoCorrelation):
        blind_search(s.t_a, s.t_b, max_offset_ps=50e9, max_freq=10e-6, segment_ps=20e9)
