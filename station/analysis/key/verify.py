"""Error verification: compare short universal-hash tags of the two reconciled keys.

Both sides hash their reconciled key with the same random Toeplitz matrix (a universal₂
family, see :mod:`.amplify`), Alice discloses her tag and Bob compares. If the keys differ,
the tags collide with probability 2^-tag_bits over the seed, so a pass that verifies is
ε_cor-correct with ε_cor = 2^-tag_bits (Tomamichel et al., Nat. Commun. 3, 634 (2012),
"error verification"). The tag bits are public; the finite-key formula accounts for them
in its log2(1/ε_cor) term, not in leak_EC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from station.analysis.key.amplify import toeplitz_hash, toeplitz_seed

Bits = npt.NDArray[np.uint8]


def tag_bits_for(eps_cor: float) -> int:
    """Smallest tag length t with 2^-t <= eps_cor (50 bits for ε_cor = 1e-15)."""
    return max(1, math.ceil(-math.log2(eps_cor)))


@dataclass(frozen=True)
class Verification:
    """Outcome of the tag comparison; ``tag_a`` is what Alice disclosed."""

    verified: bool
    tag_bits: int
    tag_a: Bits
    tag_b: Bits


def verify(key_a: Bits, key_b: Bits, *, tag_bits: int, rng: np.random.Generator) -> Verification:
    """Hash both keys with one shared random Toeplitz seed and compare the tags."""
    if len(key_a) != len(key_b):
        z = np.zeros(tag_bits, dtype=np.uint8)
        return Verification(False, tag_bits, z, z.copy())
    seed = toeplitz_seed(len(key_a), tag_bits, rng)  # public, drawn after reconciliation
    tag_a = toeplitz_hash(key_a, seed, tag_bits)  # computed by Alice, sent to Bob
    tag_b = toeplitz_hash(key_b, seed, tag_bits)  # computed by Bob
    return Verification(bool(np.array_equal(tag_a, tag_b)), tag_bits, tag_a, tag_b)
