"""Cascade + verification: equal keys or a failed verification, never unequal verified keys."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from station.analysis.key import CascadeParams, binary_entropy, cascade
from station.analysis.key.verify import verify


def _pair(n: int, q: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    return a, a ^ (rng.random(n) < q).astype(np.uint8)


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(2, 3000),
    q=st.floats(0.0, 0.25),
    passes=st.integers(1, 4),
    tag_bits=st.sampled_from([50, 64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_reconciled_keys_are_equal_or_verification_fails(
    n: int, q: float, passes: int, tag_bits: int, seed: int
) -> None:
    a, b = _pair(n, q, seed)
    rng = np.random.default_rng(seed + 1)
    rec = cascade(a, b, qber_estimate=q, rng=rng, params=CascadeParams(passes=passes))
    ver = verify(a, rec.b_corrected, tag_bits=tag_bits, rng=rng)
    equal = bool(np.array_equal(a, rec.b_corrected))
    assert ver.verified == equal  # a collision has probability 2^-50: never "verified" if unequal
    # Every flip corrects a true error (Alice's parities are exact), so flips <= errors.
    assert rec.flipped <= int(np.count_nonzero(a != b))
    assert (
        int(np.count_nonzero(a != rec.b_corrected)) == int(np.count_nonzero(a != b)) - rec.flipped
    )
    assert np.array_equal(b, _pair(n, q, seed)[1])  # Bob's input is not modified


def test_leak_is_one_parity_per_block_without_errors_plus_one_search() -> None:
    # alpha/Q = 0.64/0.01 -> k = 64, 256, 512, 512 (capped at n/2) for n = 1024.
    params = CascadeParams(passes=4, alpha=0.64, growth=4.0)
    a = np.random.default_rng(6).integers(0, 2, 1024, dtype=np.uint8)
    rec = cascade(a, a.copy(), qber_estimate=0.01, rng=np.random.default_rng(1), params=params)
    assert rec.block_sizes == (64, 256, 512, 512)
    blocks = 1024 // 64 + 1024 // 256 + 2 + 2
    assert rec.leak_bits == blocks
    assert rec.flipped == 0
    assert math.isnan(rec.f)
    b = a.copy()
    b[700] ^= 1
    rec = cascade(a, b, qber_estimate=0.01, rng=np.random.default_rng(1), params=params)
    # One error: found by a binary search of log2(64) = 6 parities in pass 1, none after.
    assert rec.leak_bits == blocks + 6
    assert rec.flipped == 1
    assert np.array_equal(rec.b_corrected, a)


def test_efficiency_at_qber_2_to_8_percent_on_10k_bits() -> None:
    for i, q in enumerate((0.02, 0.04, 0.06, 0.08)):
        a, b = _pair(20_000, q, 100 + i)
        errors = int(np.count_nonzero(a != b))
        rec = cascade(a, b, qber_estimate=q, rng=np.random.default_rng(i))
        assert np.array_equal(rec.b_corrected, a)
        assert rec.flipped == errors
        shannon = 20_000 * binary_entropy(errors / 20_000)
        assert math.isclose(rec.f, rec.leak_bits / shannon)
        assert 1.0 < rec.f <= 1.3


def test_binary_entropy_known_values() -> None:
    assert binary_entropy(0.5) == 1.0
    assert binary_entropy(0.0) == 0.0
    assert binary_entropy(1.0) == 0.0
    assert math.isclose(binary_entropy(0.11), 0.4999, abs_tol=1e-3)
