"""BBM92 sifting: keep the coincidences measured in the same basis at both stations.

Each station's analyzer chooses its basis passively (a 50:50 beam splitter in front of two
polarizing beam splitters), so about half of the coincidences are in matching bases
(Bennett, Brassard, Mermin, PRL 68, 557 (1992)). Only the *arm* (basis) of each detection is
exchanged over the public channel; the outcome bits stay local. In a basis where the source
state gives opposite outcomes (for |Ψ+⟩ = (|HV⟩+|VH⟩)/√2 that is the H/V basis), Bob inverts
his bit so that, ideally, ``a == b`` in both bases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from station.analysis.errors import AnalysisError

Bits = npt.NDArray[np.uint8]

N_BASES = 2  #: arm 0 = H/V, arm 1 = D/A


@dataclass(frozen=True)
class SiftedKey:
    """Sifted raw key: Alice's and Bob's bits (uint8 0/1), time-ordered, with the basis of each.

    ``a_bits`` and ``b_bits`` belong to different stations: only ``arm`` (the basis) is public.
    ``n_per_basis[i]`` counts the bits measured in basis ``i`` (0 = H/V, 1 = D/A).
    """

    a_bits: Bits
    b_bits: Bits
    arm: Bits
    n_per_basis: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.a_bits)
        if len(self.b_bits) != n or len(self.arm) != n:
            raise AnalysisError(
                f"sifted key arrays differ in length (a {n}, b {len(self.b_bits)}, "
                f"arm {len(self.arm)}); they must hold one entry per matched coincidence"
            )

    @property
    def n(self) -> int:
        """Number of sifted bits (all bases)."""
        return len(self.a_bits)

    @classmethod
    def empty(cls) -> SiftedKey:
        z = np.zeros(0, dtype=np.uint8)
        return cls(z, z.copy(), z.copy(), (0, 0))

    @classmethod
    def concatenate(cls, parts: list[SiftedKey]) -> SiftedKey:
        """Join sifted keys of several passes in order (the key budget spans passes)."""
        if not parts:
            return cls.empty()
        arm = np.concatenate([p.arm for p in parts])
        return cls(
            np.concatenate([p.a_bits for p in parts]),
            np.concatenate([p.b_bits for p in parts]),
            arm,
            _count_bases(arm),
        )


def _count_bases(arm: Bits) -> tuple[int, int]:
    counts = np.bincount(arm, minlength=N_BASES)
    return int(counts[0]), int(counts[1])


def _check_binary(name: str, x: npt.NDArray[np.uint8]) -> None:
    if x.size and int(x.max()) > 1:
        raise AnalysisError(f"{name} must hold 0/1 values, found {int(x.max())}")


def sift(
    arm_a: Bits,
    bit_a: Bits,
    arm_b: Bits,
    bit_b: Bits,
    *,
    anticorrelated: tuple[bool, bool],
) -> SiftedKey:
    """Keep coincidences with ``arm_a == arm_b``; Bob flips his bit in anticorrelated bases.

    Inputs have one entry per coincidence (time-ordered): ``arm`` = basis (0 = H/V,
    1 = D/A), ``bit`` = outcome (0 = "+" output H or D, 1 = "−" output V or A).
    ``anticorrelated[arm]`` is True when the ideal state gives opposite outcomes in that basis.
    """
    arrays = {"arm_a": arm_a, "bit_a": bit_a, "arm_b": arm_b, "bit_b": bit_b}
    n = len(arm_a)
    for name, x in arrays.items():
        if len(x) != n:
            raise AnalysisError(
                f"{name} has {len(x)} entries, arm_a has {n}: sift needs one entry per coincidence"
            )
        _check_binary(name, np.asarray(x, dtype=np.uint8))
    arm_a8 = np.asarray(arm_a, dtype=np.uint8)
    keep = arm_a8 == np.asarray(arm_b, dtype=np.uint8)
    arm = arm_a8[keep]
    a = np.asarray(bit_a, dtype=np.uint8)[keep]
    flip = np.array([int(anticorrelated[0]), int(anticorrelated[1])], dtype=np.uint8)
    b = np.asarray(bit_b, dtype=np.uint8)[keep] ^ flip[arm]
    return SiftedKey(a, b, arm, _count_bases(arm))
