"""Error correction (information reconciliation) of the sifted key by Cascade.

Bob's bits are corrected towards Alice's with the interactive Cascade protocol (compiled
kernel in :mod:`.cascade_kernel`). The figure of merit is the reconciliation efficiency

    f = leak_EC / (n · h(Q)),

the disclosed bits over the Shannon limit n·h(Q) (Slepian–Wolf), Q the actual error rate of
the block (the number of bits Cascade flipped over n, exact once the block verifies).
Why Cascade rather than LDPC syndrome decoding with ``ldpc``: measured in this repository
(docs/analysis-key.md, bench/bench_key.py), Cascade gives f ≈ 1.05–1.15 at QBER 2–8 % on
10⁴–10⁵-bit blocks at ~10⁷ bits/s, while the ``ldpc`` BP decoder on the random regular
codes we can build without an optimised degree distribution is worse in both f and speed.
Cascade's cost, its many round trips, is irrelevant here: post-pass processing of both
stations' data runs after the pass, not over a live satellite-to-ground link.

Block sizes: k₁ = ⌈α/Q⌉ with α = 0.73 (Brassard–Salvail; the "original" Cascade of
Martinez-Mateo et al. 2015, arXiv:1407.3257), then ×4 per pass instead of the original ×2
(their observation that larger later blocks cost fewer parities; k₂ = 4k₁ as in their
modified Cascade), every block capped at n/2; 4 passes. Measured on 10⁴ bits with a sampled
Q (docs/analysis-key.md): f ≈ 1.06–1.08 with ~1 % of blocks left with residual errors
(caught by verification), against f ≈ 1.13–1.18 and no residual error in 400 blocks for ×2.
Q is the *sampled* QBER estimate, the only one known before correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from station.analysis.errors import AnalysisError
from station.analysis.key.cascade_kernel import cascade_kernel

Bits = npt.NDArray[np.uint8]


def binary_entropy(q: float) -> float:
    """h(q) = −q log2 q − (1−q) log2(1−q), in bits; h(0) = h(1) = 0."""
    if q <= 0.0 or q >= 1.0:
        return 0.0
    return -q * math.log2(q) - (1.0 - q) * math.log2(1.0 - q)


@dataclass(frozen=True)
class CascadeParams:
    """Cascade schedule: ``passes`` passes, first block ⌈alpha/Q⌉ bits, then × ``growth``.

    ``min_qber`` floors Q when the sample saw no error (a block of 1/min_qber bits).
    """

    passes: int = 4
    alpha: float = 0.73
    growth: float = 4.0
    min_qber: float = 0.005

    def block_sizes(self, n: int, qber_estimate: float) -> list[int]:
        """Block size of each pass for an n-bit key at the estimated QBER."""
        q = max(qber_estimate, self.min_qber)
        sizes = []
        k = max(2.0, math.ceil(self.alpha / q))
        for _ in range(self.passes):
            sizes.append(int(max(1, min(k, max(n // 2, 1)))))
            k = math.ceil(k * self.growth)
        return sizes


@dataclass(frozen=True)
class Reconciliation:
    """Bob's corrected key and the leak accounting.

    ``leak_bits`` = parities Alice disclosed; ``flipped`` = bits Bob changed; ``f`` =
    leak / (n·h(flipped/n)), NaN when no error was corrected (f undefined at Q = 0).
    """

    b_corrected: Bits
    leak_bits: int
    flipped: int
    n: int
    block_sizes: tuple[int, ...]

    @property
    def qber_corrected(self) -> float:
        return self.flipped / self.n if self.n else 0.0

    @property
    def f(self) -> float:
        h = binary_entropy(self.qber_corrected)
        return self.leak_bits / (self.n * h) if h > 0 else float("nan")


def cascade(
    a_bits: Bits,
    b_bits: Bits,
    *,
    qber_estimate: float,
    rng: np.random.Generator,
    params: CascadeParams | None = None,
) -> Reconciliation:
    """Run Cascade: returns Bob's corrected copy (inputs untouched) and the leaked bits.

    The pass permutations come from ``rng`` (a seed both sides share; public).
    """
    params = params or CascadeParams()
    n = len(a_bits)
    if len(b_bits) != n:
        raise AnalysisError(f"Alice has {n} bits and Bob {len(b_bits)}: reconcile needs equal keys")
    if n == 0:
        return Reconciliation(np.zeros(0, dtype=np.uint8), 0, 0, 0, ())
    sizes = params.block_sizes(n, qber_estimate)
    perms = np.empty((len(sizes), n), dtype=np.int64)
    for p in range(len(sizes)):
        perms[p] = rng.permutation(n)
    a = np.ascontiguousarray(a_bits, dtype=np.uint8)
    b = np.array(b_bits, dtype=np.uint8, copy=True)
    leak, flips = cascade_kernel(a, b, perms, np.asarray(sizes, dtype=np.int64))
    return Reconciliation(b, int(leak), int(flips), n, tuple(sizes))
