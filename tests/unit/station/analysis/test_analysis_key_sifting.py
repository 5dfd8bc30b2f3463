"""BBM92 sifting: exact on random inputs, ideal states give equal bits, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.analysis.errors import AnalysisError
from station.analysis.key import SiftedKey, sift


def _reference_sift(
    arm_a: list[int], bit_a: list[int], arm_b: list[int], bit_b: list[int], anti: tuple[bool, bool]
) -> tuple[list[int], list[int], list[int]]:
    """Loop version of the definition, one coincidence at a time."""
    a, b, arm = [], [], []
    for xa, ba, xb, bb in zip(arm_a, bit_a, arm_b, bit_b, strict=True):
        if xa == xb:
            a.append(ba)
            b.append(bb ^ int(anti[xa]))
            arm.append(xa)
    return a, b, arm


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.tuples(*(st.integers(0, 1) for _ in range(4))), max_size=200),
    anti=st.tuples(st.booleans(), st.booleans()),
)
def test_sift_equals_the_definition(
    data: list[tuple[int, int, int, int]], anti: tuple[bool, bool]
) -> None:
    cols = [np.array([row[i] for row in data], dtype=np.uint8) for i in range(4)]
    got = sift(cols[0], cols[1], cols[2], cols[3], anticorrelated=anti)
    a, b, arm = _reference_sift(
        cols[0].tolist(), cols[1].tolist(), cols[2].tolist(), cols[3].tolist(), anti
    )
    assert got.a_bits.tolist() == a
    assert got.b_bits.tolist() == b
    assert got.arm.tolist() == arm
    assert got.n_per_basis == (arm.count(0), arm.count(1))
    assert got.a_bits.dtype == np.uint8
    assert got.b_bits.dtype == np.uint8


def test_ideal_psi_plus_gives_identical_sifted_bits() -> None:
    # |Ψ+⟩: anticorrelated in H/V, correlated in D/A (E(45°,45°) = −cos 180° = +1).
    rng = np.random.default_rng(1)
    n = 5000
    arm_a = rng.integers(0, 2, n, dtype=np.uint8)
    arm_b = rng.integers(0, 2, n, dtype=np.uint8)
    bit_a = rng.integers(0, 2, n, dtype=np.uint8)
    same = arm_a == arm_b
    bit_b = np.where(same & (arm_a == 0), 1 - bit_a, np.where(same, bit_a, rng.integers(0, 2, n)))
    key = sift(arm_a, bit_a, arm_b, bit_b.astype(np.uint8), anticorrelated=(True, False))
    assert key.n == int(same.sum())
    assert np.array_equal(key.a_bits, key.b_bits)
    wrong = sift(arm_a, bit_a, arm_b, bit_b.astype(np.uint8), anticorrelated=(False, False))
    assert np.array_equal(wrong.a_bits[wrong.arm == 0], 1 - wrong.b_bits[wrong.arm == 0])


def test_sift_refuses_unequal_lengths_and_non_binary_values() -> None:
    one = np.zeros(3, dtype=np.uint8)
    with pytest.raises(AnalysisError, match="bit_b"):
        sift(one, one, one, np.zeros(2, dtype=np.uint8), anticorrelated=(True, False))
    with pytest.raises(AnalysisError, match="0/1"):
        sift(one, np.array([0, 2, 1], dtype=np.uint8), one, one, anticorrelated=(True, False))


def test_concatenate_keeps_order_and_recounts_bases() -> None:
    k1 = SiftedKey(
        np.array([1, 0], np.uint8), np.array([1, 1], np.uint8), np.array([0, 0], np.uint8), (2, 0)
    )
    k2 = SiftedKey(
        np.array([0], np.uint8), np.array([0], np.uint8), np.array([1], np.uint8), (0, 1)
    )
    both = SiftedKey.concatenate([k1, k2])
    assert both.a_bits.tolist() == [1, 0, 0]
    assert both.b_bits.tolist() == [1, 1, 0]
    assert both.n_per_basis == (2, 1)
    assert SiftedKey.concatenate([]).n == 0
