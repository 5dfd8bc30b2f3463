"""LDPC syndrome reconciliation (the measured alternative to Cascade): code shape and decoding."""

from __future__ import annotations

import numpy as np

from station.analysis.key.reconcile_ldpc import (
    column_regular_code,
    ldpc_reconcile,
    rows_for,
    syndrome,
)


def test_code_is_column_regular_and_rate_matches_the_target_f() -> None:
    m = rows_for(3000, 0.04, 1.5)
    assert m == int(np.ceil(1.5 * 3000 * 0.24229218908241482))
    h = column_regular_code(3000, m, column_weight=3, rng=np.random.default_rng(1))
    assert h.shape == (m, 3000)
    assert np.all(np.asarray(h.sum(axis=0)).ravel() == 3)
    assert h.max() == 1


def test_syndrome_decoding_corrects_bob_and_leaks_the_syndrome_length() -> None:
    rng = np.random.default_rng(2)
    n, q = 3000, 0.02
    h = column_regular_code(n, rows_for(n, q, 1.8), column_weight=3, rng=rng)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    e = np.zeros(n, dtype=np.uint8)
    e[rng.choice(n, size=int(q * n), replace=False)] = 1
    rec = ldpc_reconcile(a, a ^ e, h=h, qber_estimate=q)
    assert np.array_equal(rec.b_corrected, a)
    assert rec.flipped == int(e.sum())
    assert rec.leak_bits == h.shape[0]
    assert np.array_equal(syndrome(h, rec.b_corrected), syndrome(h, a))
