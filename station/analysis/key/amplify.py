"""Toeplitz-matrix hashing over GF(2): privacy amplification and verification tags.

A random m × n Toeplitz matrix T over GF(2), given by n + m − 1 seed bits, is a universal₂
hash family: for x ≠ x′, P[T x = T x′] = 2⁻ᵐ over the seed (Krawczyk, CRYPTO '94, LNCS 839;
Carter & Wegman, JCSS 18, 143 (1979)). The leftover hash lemma then makes T x ε-close to
uniform for Eve when m is the finite-key length (Tomamichel et al., Nat. Commun. 3, 634 (2012)).
The AIT QKD R10 stack uses the same hash with a number-theoretic transform.

Convention: ``T[i, j] = seed[i - j + n - 1]`` (first column = seed[n-1 : n-1+m], first row
= seed[n-1::-1]). Then ``(T x)_i = Σ_j seed[i - j + n - 1] x_j`` is entry ``i + n - 1`` of the
linear convolution ``seed * x``: an FFT computes it in O((n+m) log(n+m)). Every partial sum
is an integer ≤ n, so float64 FFT rounding (relative error ~1e-16 · log n) is far below 0.5
for n up to ~10⁹ and rounding recovers the exact integer; the result mod 2 is the product.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft

from station.analysis.errors import AnalysisError

Bits = npt.NDArray[np.uint8]


def toeplitz_seed(n_in: int, n_out: int, rng: np.random.Generator) -> Bits:
    """The n_in + n_out − 1 public random bits defining an n_out × n_in Toeplitz matrix."""
    return rng.integers(0, 2, size=max(n_in + n_out - 1, 0), dtype=np.uint8)


def _check(x: Bits, seed: Bits, n_out: int) -> None:
    if n_out < 0:
        raise AnalysisError(f"Toeplitz output length must be >= 0, got {n_out}")
    if len(seed) != len(x) + n_out - 1 and n_out > 0:
        raise AnalysisError(
            f"Toeplitz seed has {len(seed)} bits; {len(x)} inputs and {n_out} outputs need "
            f"{len(x) + n_out - 1}"
        )


def toeplitz_hash(x: Bits, seed: Bits, n_out: int) -> Bits:
    """T·x over GF(2) by FFT convolution (O(n log n)); x and the result are uint8 0/1."""
    _check(x, seed, n_out)
    n = len(x)
    if n_out == 0 or n == 0:
        return np.zeros(n_out, dtype=np.uint8)
    size = scipy.fft.next_fast_len(len(seed) + n - 1, real=True)
    fs = scipy.fft.rfft(seed.astype(np.float64), size)
    fx = scipy.fft.rfft(x.astype(np.float64), size)
    conv: npt.NDArray[np.float64] = scipy.fft.irfft(fs * fx, size)[n - 1 : n - 1 + n_out]
    out: Bits = (np.rint(conv).astype(np.int64) & 1).astype(np.uint8)
    return out


def toeplitz_matrix(seed: Bits, n_in: int, n_out: int) -> Bits:
    """The dense n_out × n_in Toeplitz matrix (for tests and small n only)."""
    i = np.arange(n_out)[:, None]
    j = np.arange(n_in)[None, :]
    out: Bits = seed[i - j + n_in - 1].astype(np.uint8)
    return out


def toeplitz_hash_dense(x: Bits, seed: Bits, n_out: int) -> Bits:
    """T·x over GF(2) with the dense matrix: the O(n·m) reference the FFT version must equal."""
    _check(x, seed, n_out)
    if n_out == 0 or len(x) == 0:
        return np.zeros(n_out, dtype=np.uint8)
    t = toeplitz_matrix(seed, len(x), n_out).astype(np.int64)
    return ((t @ x.astype(np.int64)) & 1).astype(np.uint8)


def amplify(key: Bits, seed: Bits, n_out: int) -> Bits:
    """Privacy amplification: compress the reconciled key to the n_out-bit secure key."""
    return toeplitz_hash(key, seed, n_out)
