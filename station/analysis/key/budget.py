"""Key budget: accumulate sifted bits over passes until a block is worth distilling.

A Micius-like pass yields only hundreds to thousands of sifted bits, while the finite-key
bound needs ~10⁵ or more (:func:`.finite.needed_sifted_bits`): the fixed cost
log2(2/(ε_sec² ε_cor)) ≈ 117 bits and the sampling fluctuation μ ∝ 1/√k dominate short
blocks. Yin et al., Nature 582, 501 (2020) likewise pooled 3,100 s of data over many passes.
The budget keeps each pass's bits in order with its pass id, so the report can say how much
each pass contributed to a distilled block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from station.analysis.errors import AnalysisError
from station.analysis.key.sifting import SiftedKey


@dataclass(frozen=True)
class PassContribution:
    """Sifted bits one pass put into a block (``n_per_basis``: H/V, D/A)."""

    pass_id: str
    n_bits: int
    n_per_basis: tuple[int, int]


@dataclass
class KeyBudget:
    """Sifted bits waiting for distillation, across passes.

    ``block_bits`` is the size at which :meth:`ready` says a block can be distilled (choose it
    from :func:`.finite.needed_sifted_bits` with a margin).
    """

    block_bits: int
    _parts: list[tuple[str, SiftedKey]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.block_bits < 2:
            raise AnalysisError(f"key budget block size must be >= 2 bits, got {self.block_bits}")

    def add(self, pass_id: str, sifted: SiftedKey) -> None:
        """Append one pass's sifted key (a pass id may appear only once per block)."""
        if any(pid == pass_id for pid, _ in self._parts):
            raise AnalysisError(f"pass {pass_id!r} is already in the key budget")
        self._parts.append((pass_id, sifted))

    @property
    def n_bits(self) -> int:
        """Sifted bits accumulated so far."""
        return sum(s.n for _, s in self._parts)

    def ready(self) -> bool:
        """True when at least ``block_bits`` sifted bits are waiting."""
        return self.n_bits >= self.block_bits

    def contributions(self) -> list[PassContribution]:
        """Per-pass contribution to the bits waiting, in the order added."""
        return [PassContribution(pid, s.n, s.n_per_basis) for pid, s in self._parts]

    def take(self) -> tuple[SiftedKey, list[PassContribution]]:
        """Hand over everything accumulated as one block and start a new, empty budget.

        All waiting passes go into the block (a pass is never split, so the contribution
        report stays exact); the block may therefore exceed ``block_bits``.
        """
        block = SiftedKey.concatenate([s for _, s in self._parts])
        contributions = self.contributions()
        self._parts = []
        return block, contributions
