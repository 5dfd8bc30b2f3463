"""Finite-key secure length for entanglement-based BB84 (BBM92).

Tomamichel, Lim, Gisin, Renner, "Tight finite-key analysis for quantum cryptography",
Nat. Commun. 3, 634 (2012), Eq. (2) with q = 1 (BB84 bases are mutually unbiased), secure
against coherent attacks, ε_sec-secret and ε_cor-correct:

    ℓ ≤ n (1 − h(Q_tol + μ)) − leak_EC − log2( 2 / (ε_sec² ε_cor) ),
    μ = sqrt( (n + k)/(n k) · (k + 1)/k · ln(4/ε_sec) ),

n = key bits (after removing the sample), k = sample bits, Q_tol = the tolerated QBER
(the protocol aborts when the sample's QBER exceeds it), leak_EC = bits disclosed by error
correction. The last term is TLGR's Supplementary Eq. (S3) with ε = ε_sec/4 and
ε̃ = ε_sec/2: 2·log2(1/(2ε̃)) + log2(2/ε_cor), the latter covering the ⌈log2(1/ε_cor)⌉-bit
verification tag. Checked against a transcription of the paper's text (Eq. (2), Suppl.
Notes 1–2); the issue's ln(2/ε_sec) in μ is the paper's ln(4/ε_sec). The same
formula applies to BBM92 since the entanglement-based protocol is the source-in-the-middle
version of BB84 (Bennett, Brassard, Mermin, PRL 68, 557 (1992)). The QBER is assumed equal
in both bases (one pooled sample); see docs/analysis-key.md.
"""

from __future__ import annotations

import math

from station.analysis.key.reconcile import binary_entropy
from station.analysis.key.sampling import tlgr_mu


def secure_length_float(
    n: int, k: int, qber_tol: float, leak_ec: float, *, eps_sec: float, eps_cor: float
) -> float:
    """The right-hand side of the TLGR bound in bits (may be negative)."""
    if n <= 0:
        return -math.log2(2.0 / (eps_sec**2 * eps_cor)) - leak_ec
    q = min(qber_tol + tlgr_mu(n, k, eps_sec), 0.5)
    return n * (1.0 - binary_entropy(q)) - leak_ec - math.log2(2.0 / (eps_sec**2 * eps_cor))


def secure_length(
    n: int, k: int, qber_tol: float, leak_ec: float, *, eps_sec: float, eps_cor: float
) -> int:
    """ℓ: the largest integer key length the bound allows (negative: no key)."""
    return math.floor(
        secure_length_float(n, k, qber_tol, leak_ec, eps_sec=eps_sec, eps_cor=eps_cor)
    )


def needed_sifted_bits(
    qber: float,
    *,
    f_ec: float,
    sample_fraction: float,
    eps_sec: float,
    eps_cor: float,
    max_bits: int = 10**13,
) -> int | None:
    """Fewest sifted bits N giving ℓ > 0 at this QBER with leak_EC = f·n·h(Q).

    N splits into k = fraction·N sample bits and n = N − k key bits. ℓ(N) is increasing in N
    (μ falls, the fixed cost is amortised), so a bisection finds the threshold. None when
    even ``max_bits`` is not enough (QBER above the asymptotic limit 1 − h(Q) − f·h(Q) = 0).
    """

    def ell(n_sifted: int) -> float:
        k = max(1, round(sample_fraction * n_sifted))
        n = n_sifted - k
        return secure_length_float(
            n, k, qber, f_ec * n * binary_entropy(qber), eps_sec=eps_sec, eps_cor=eps_cor
        )

    if ell(max_bits) <= 0:
        return None
    lo, hi = 2, max_bits
    while hi - lo > 1 + lo // 1000:  # 0.1 % resolution is plenty for a report
        mid = (lo + hi) // 2
        if ell(mid) > 0:
            hi = mid
        else:
            lo = mid
    return hi
