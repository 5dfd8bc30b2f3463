"""One-way reconciliation by LDPC syndrome decoding (``ldpc`` belief propagation).

The alternative to Cascade, kept to measure it against (bench/bench_key.py): Alice sends the
syndrome s_A = H·a of an m × n LDPC parity-check matrix H (m leaked bits); Bob decodes the
error pattern e from H·e = s_A ⊕ H·b with belief propagation on a binary symmetric channel
of crossover Q (Pearson, Proc. ACCESS '04; Elkouss, Leverrier, Alléaume, Martinez-Mateo,
ISIT 2009). Codes: column-regular (weight 3) random matrices built here by the
configuration model, with m = ⌈f_target · n · h(Q)⌉ rows so the rate matches the QBER (a
family of rates rather than puncturing/shortening). Without optimised irregular degree
distributions such codes need f ≈ 1.3–1.6 at 10⁴ bits for a useful frame success rate:
that is the measured reason Cascade is the default (docs/analysis-key.md).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import scipy.sparse
from ldpc.bp_decoder import BpDecoder

from station.analysis.errors import AnalysisError
from station.analysis.key.reconcile import Reconciliation, binary_entropy

Bits = npt.NDArray[np.uint8]


def column_regular_code(
    n: int, m: int, *, column_weight: int, rng: np.random.Generator
) -> scipy.sparse.csr_matrix:
    """Random m × n parity-check matrix, every column of weight ``column_weight``.

    Edges are a random matching of n·w column sockets to m near-equal row sockets;
    a repeated (row, column) pair is moved to another random row, so weights are exact.
    """
    if not 0 < m < n:
        raise AnalysisError(f"LDPC code needs 0 < m < n, got m = {m}, n = {n}")
    w = column_weight
    rows = np.tile(np.arange(m), math.ceil(n * w / m))[: n * w]
    rng.shuffle(rows)
    rows = rows.reshape(n, w)
    for j in range(n):  # resolve duplicate rows within a column (rare when m >> w)
        r = rows[j]
        while len(set(r.tolist())) < w:
            r[rng.integers(w)] = rng.integers(m)
    cols = np.repeat(np.arange(n), w)
    data = np.ones(n * w, dtype=np.uint8)
    return scipy.sparse.csr_matrix((data, (rows.ravel(), cols)), shape=(m, n))


def syndrome(h: scipy.sparse.csr_matrix, bits: Bits) -> Bits:
    """H·x over GF(2)."""
    s: Bits = ((h @ bits.astype(np.int64)) & 1).astype(np.uint8)
    return s


def rows_for(n: int, qber: float, f_target: float) -> int:
    """Syndrome length m = ⌈f · n · h(Q)⌉ (the leak) for a target efficiency."""
    return min(n - 1, max(1, math.ceil(f_target * n * binary_entropy(qber))))


def ldpc_reconcile(
    a_bits: Bits,
    b_bits: Bits,
    *,
    h: scipy.sparse.csr_matrix,
    qber_estimate: float,
    decoder: BpDecoder | None = None,
    max_iter: int = 60,
) -> Reconciliation:
    """Correct Bob's bits from Alice's syndrome; leak = number of syndrome bits."""
    s_a = syndrome(h, a_bits)  # Alice -> public
    s_b = syndrome(h, b_bits)  # Bob, local
    if decoder is None:
        decoder = BpDecoder(
            h,
            error_rate=max(qber_estimate, 1e-3),
            max_iter=max_iter,
            bp_method="minimum_sum",
            ms_scaling_factor=0.75,
            schedule="serial",
        )
    e_hat = np.asarray(decoder.decode(s_a ^ s_b), dtype=np.uint8)
    b_corr = b_bits ^ e_hat
    flipped = int(np.count_nonzero(e_hat))
    return Reconciliation(b_corr, h.shape[0], flipped, len(a_bits), ())
