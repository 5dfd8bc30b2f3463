"""Secret-key distillation for entanglement-based BB84 (BBM92) from matched coincidences.

Pipeline: :func:`sift` (same-basis coincidences) → :class:`KeyBudget` (pool passes) →
:func:`distill` (sample QBER → Cascade → verification tag → finite-key length → Toeplitz
privacy amplification). Method, formulas and measured figures: docs/analysis-key.md.
"""

from station.analysis.key.budget import KeyBudget, PassContribution
from station.analysis.key.distill import KeyParams, KeyResult, distill
from station.analysis.key.finite import needed_sifted_bits, secure_length
from station.analysis.key.reconcile import CascadeParams, binary_entropy, cascade
from station.analysis.key.sifting import SiftedKey, sift

__all__ = [
    "CascadeParams",
    "KeyBudget",
    "KeyParams",
    "KeyResult",
    "PassContribution",
    "SiftedKey",
    "binary_entropy",
    "cascade",
    "distill",
    "needed_sifted_bits",
    "secure_length",
    "sift",
]
