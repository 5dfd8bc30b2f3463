"""Parameter estimation: disclose a random sample of the sifted key to estimate the QBER.

A random subset of k of the N sifted positions (drawn from a public seed, after the bits
are fixed) is disclosed by both sides and removed from the key; its error fraction Q_k
estimates the error rate of the n = N − k remaining bits. Tomamichel, Lim, Gisin, Renner,
Nat. Commun. 3, 634 (2012) (TLGR), Eq. (2) and Supplementary Note 2, define

    μ(n, k, ε_sec) = sqrt( (n + k)/(n k) · (k + 1)/k · ln(4/ε_sec) ).

Serfling's bound for sampling without replacement (Ann. Stat. 2, 39 (1974)) gives
P[Q_key ≥ Q_k + μ] ≤ exp(−2 n k² μ² / ((k + 1) N)) = (ε_sec/4)²: the key bits' error rate
exceeds Q_k + μ with probability at most (ε_sec/4)², and μ is the term of :mod:`.finite`.
(The issue text had ln(2/ε_sec); the paper's Eq. (2) has ln(4/ε_sec), slightly larger.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from station.analysis.errors import AnalysisError

Bits = npt.NDArray[np.uint8]
Index = npt.NDArray[np.int64]


def tlgr_mu(n: int, k: int, eps_sec: float) -> float:
    """TLGR μ: the key bits' error rate exceeds the sample's by μ w.p. ≤ (ε_sec/4)²."""
    if n <= 0 or k <= 0:
        return math.inf
    return math.sqrt((n + k) / (n * k) * (k + 1) / k * math.log(4.0 / eps_sec))


@dataclass(frozen=True)
class QberSample:
    """The disclosed sample and the estimate for the rest.

    ``sample_idx`` / ``key_idx`` index the sifted key (sorted, disjoint, together all of it).
    ``qber`` = errors / k; ``qber_upper`` = min(qber + μ(n, k, eps), 0.5), exceeded by the
    key bits' error rate with probability ≤ (eps/4)² (``eps`` = ε_sec in ``distill``).
    """

    sample_idx: Index
    key_idx: Index
    errors: int
    qber: float
    qber_upper: float
    mu: float
    eps: float

    @property
    def k(self) -> int:
        return len(self.sample_idx)

    @property
    def n(self) -> int:
        return len(self.key_idx)


def sample_size(n_sifted: int, *, fraction: float | None, size: int | None) -> int:
    """k from either a fraction of the sifted bits or a fixed size (at least 1, at most N−1)."""
    if (fraction is None) == (size is None):
        raise AnalysisError("give exactly one of sample fraction or sample size")
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise AnalysisError(f"sample fraction must be in (0, 1), got {fraction}")
    k = round(fraction * n_sifted) if fraction is not None else int(size or 0)
    return max(1, min(k, n_sifted - 1))


def sample_qber(
    a_bits: Bits,
    b_bits: Bits,
    *,
    k: int,
    rng: np.random.Generator,
    eps: float,
) -> QberSample:
    """Draw k random positions, compare the disclosed bits, bound the rest's QBER.

    ``a_bits[sample]`` and ``b_bits[sample]`` are what each side discloses; neither side
    reads the other's undisclosed bits here.
    """
    n_sifted = len(a_bits)
    if len(b_bits) != n_sifted:
        raise AnalysisError(f"Alice has {n_sifted} bits and Bob {len(b_bits)}")
    if not 0 < k < n_sifted:
        raise AnalysisError(f"sample of {k} bits out of {n_sifted}: need 0 < k < N")
    chosen = np.zeros(n_sifted, dtype=bool)
    chosen[rng.choice(n_sifted, size=k, replace=False)] = True
    sample_idx = np.flatnonzero(chosen).astype(np.int64)
    key_idx = np.flatnonzero(~chosen).astype(np.int64)
    disclosed_a = a_bits[sample_idx]  # Alice -> public
    disclosed_b = b_bits[sample_idx]  # Bob -> public
    errors = int(np.count_nonzero(disclosed_a != disclosed_b))
    qber = errors / k
    mu = tlgr_mu(len(key_idx), k, eps)
    return QberSample(sample_idx, key_idx, errors, qber, min(qber + mu, 0.5), mu, eps)
