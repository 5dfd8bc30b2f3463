"""Toeplitz hashing: the FFT product equals the dense GF(2) product bit for bit; tags work."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.analysis.errors import AnalysisError
from station.analysis.key.amplify import (
    toeplitz_hash,
    toeplitz_hash_dense,
    toeplitz_matrix,
    toeplitz_seed,
)
from station.analysis.key.verify import tag_bits_for, verify


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 300), m=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_fft_toeplitz_equals_dense_product(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n, dtype=np.uint8)
    t = toeplitz_seed(n, m, rng)
    assert np.array_equal(toeplitz_hash(x, t, m), toeplitz_hash_dense(x, t, m))


def test_fft_toeplitz_exact_on_a_long_all_ones_input() -> None:
    # Worst case for float rounding: every convolution sum is as large as it can be.
    n, m = 200_000, 64
    x = np.ones(n, dtype=np.uint8)
    t = np.ones(n + m - 1, dtype=np.uint8)
    assert np.all(toeplitz_hash(x, t, m) == (n & 1))
    # Random seed, all-ones input: row i of T·1 is the sum of seed[i : i + n].
    t = toeplitz_seed(n, m, np.random.default_rng(3))
    window = np.concatenate([[0], np.cumsum(t, dtype=np.int64)])
    expected = (window[n : n + m] - window[:m]) & 1
    assert np.array_equal(toeplitz_hash(x, t, m), expected)


def test_matrix_is_toeplitz_with_documented_convention() -> None:
    seed = np.array([1, 0, 0, 1, 1], dtype=np.uint8)  # n = 3, m = 3
    t = toeplitz_matrix(seed, 3, 3)
    assert t.tolist() == [[0, 0, 1], [1, 0, 0], [1, 1, 0]]


def test_hash_is_linear_over_gf2() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 2, (2, 777), dtype=np.uint8)
    t = toeplitz_seed(777, 100, rng)
    assert np.array_equal(
        toeplitz_hash(x ^ y, t, 100), toeplitz_hash(x, t, 100) ^ toeplitz_hash(y, t, 100)
    )


def test_wrong_seed_length_is_refused() -> None:
    with pytest.raises(AnalysisError, match="seed"):
        toeplitz_hash(np.zeros(10, np.uint8), np.zeros(10, np.uint8), 5)


def test_verification_tags() -> None:
    assert tag_bits_for(1e-15) == 50
    assert tag_bits_for(0.5) == 1
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2, 10_000, dtype=np.uint8)
    same = verify(a, a.copy(), tag_bits=50, rng=np.random.default_rng(1))
    assert same.verified
    assert np.array_equal(same.tag_a, same.tag_b)
    b = a.copy()
    b[1234] ^= 1
    diff = verify(a, b, tag_bits=50, rng=np.random.default_rng(1))
    assert not diff.verified
    assert not verify(a, a[:-1], tag_bits=50, rng=rng).verified
