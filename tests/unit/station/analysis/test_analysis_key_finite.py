"""Finite-key length (TLGR 2012) and the QBER sample: known values, monotonicity, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.analysis.errors import AnalysisError
from station.analysis.key import needed_sifted_bits, secure_length
from station.analysis.key.finite import secure_length_float
from station.analysis.key.sampling import sample_qber, sample_size, tlgr_mu

EPS_SEC, EPS_COR = 1e-10, 1e-15


def test_secure_length_matches_hand_computed_value() -> None:
    # n = 1e5, k = 1e4, Q = 3 %, leak = 2e4:  μ = sqrt(1.1e-4 · 1.0001 · ln 4e10) = 0.0518228,
    # h(0.0818228) = 0.4085697, n(1 − h) = 59143.03, log2(2/(1e-20 · 1e-15)) = 117.2675.
    assert math.isclose(tlgr_mu(100_000, 10_000, 1e-10), 0.0518228, abs_tol=1e-7)
    value = secure_length_float(100_000, 10_000, 0.03, 20_000, eps_sec=EPS_SEC, eps_cor=EPS_COR)
    assert math.isclose(value, 59143.03 - 20_000 - 117.2675, abs_tol=0.01)
    assert secure_length(100_000, 10_000, 0.03, 20_000, eps_sec=EPS_SEC, eps_cor=EPS_COR) == 39025


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(100, 10**8),
    k=st.integers(100, 10**7),
    q=st.floats(0.0, 0.15),
    leak=st.integers(0, 10**6),
)
def test_secure_length_is_monotone(n: int, k: int, q: float, leak: int) -> None:
    ell = secure_length_float(n, k, q, leak, eps_sec=EPS_SEC, eps_cor=EPS_COR)
    assert (
        secure_length_float(2 * n, k, q, leak, eps_sec=EPS_SEC, eps_cor=EPS_COR) >= ell
    )  # more key bits
    assert (
        secure_length_float(n, 2 * k, q, leak, eps_sec=EPS_SEC, eps_cor=EPS_COR) >= ell
    )  # a larger sample
    assert (
        secure_length_float(n, k, q + 0.01, leak, eps_sec=EPS_SEC, eps_cor=EPS_COR) <= ell
    )  # a higher QBER
    assert secure_length_float(
        n, k, q, leak + 1, eps_sec=EPS_SEC, eps_cor=EPS_COR
    ) == pytest.approx(ell - 1)
    assert secure_length_float(n, k, q, leak, eps_sec=1e-6, eps_cor=1e-15) >= ell


def test_needed_bits_is_the_threshold() -> None:
    for q in (0.01, 0.03, 0.06):
        need = needed_sifted_bits(
            q, f_ec=1.1, sample_fraction=0.1, eps_sec=EPS_SEC, eps_cor=EPS_COR
        )
        assert need is not None

        def ell(n_sifted: int, q: float = q) -> float:
            k = round(0.1 * n_sifted)
            n = n_sifted - k
            h = -q * math.log2(q) - (1 - q) * math.log2(1 - q)
            return secure_length_float(n, k, q, 1.1 * n * h, eps_sec=EPS_SEC, eps_cor=EPS_COR)

        assert ell(need) > 0
        assert ell(int(need * 0.99)) <= 0
    # 1 − h(Q) − 1.1 h(Q) < 0 above Q ≈ 10 %: no block length helps.
    assert (
        needed_sifted_bits(0.12, f_ec=1.1, sample_fraction=0.1, eps_sec=EPS_SEC, eps_cor=EPS_COR)
        is None
    )


def test_sample_is_reproducible_disjoint_and_counts_errors_exactly() -> None:
    rng = np.random.default_rng(8)
    a = rng.integers(0, 2, 10_000, dtype=np.uint8)
    b = a ^ (rng.random(10_000) < 0.05).astype(np.uint8)
    s1 = sample_qber(a, b, k=1000, rng=np.random.default_rng(42), eps=1e-10)
    s2 = sample_qber(a, b, k=1000, rng=np.random.default_rng(42), eps=1e-10)
    assert np.array_equal(s1.sample_idx, s2.sample_idx)
    assert s1.k == 1000
    assert s1.n == 9000
    assert np.array_equal(np.sort(np.concatenate([s1.sample_idx, s1.key_idx])), np.arange(10_000))
    assert s1.errors == int(np.count_nonzero(a[s1.sample_idx] != b[s1.sample_idx]))
    assert s1.qber == s1.errors / 1000
    assert s1.qber_upper == pytest.approx(s1.qber + tlgr_mu(9000, 1000, 1e-10))
    s3 = sample_qber(a, b, k=1000, rng=np.random.default_rng(43), eps=1e-10)
    assert not np.array_equal(s1.sample_idx, s3.sample_idx)


def test_sample_upper_bound_covers_the_key_error_rate() -> None:
    # Failure probability per trial <= (1e-3/4)^2 = 6e-8: all 200 trials must be covered.
    rng = np.random.default_rng(9)
    covered = 0
    for _ in range(200):
        a = rng.integers(0, 2, 4000, dtype=np.uint8)
        b = a ^ (rng.random(4000) < 0.04).astype(np.uint8)
        s = sample_qber(a, b, k=400, rng=rng, eps=1e-3)
        covered += int(np.mean(a[s.key_idx] != b[s.key_idx]) <= s.qber_upper)
    assert covered == 200


def test_sample_size_rules() -> None:
    assert sample_size(1000, fraction=0.1, size=None) == 100
    assert sample_size(1000, fraction=None, size=5000) == 999
    assert sample_size(3, fraction=0.01, size=None) == 1
    with pytest.raises(AnalysisError, match="exactly one"):
        sample_size(1000, fraction=0.1, size=10)
    with pytest.raises(AnalysisError, match="fraction"):
        sample_size(1000, fraction=1.5, size=None)
