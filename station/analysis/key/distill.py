"""Key distillation of one block: sample → reconcile → verify → amplify → finite-key length.

In the field, Alice and Bob run these steps over an authenticated classical channel; here
both stations' sifted bits are in one process, so the code keeps each side's bits apart and
names every disclosure: the sample bits (both sides), Alice's Cascade parities (leak_EC),
Alice's verification tag (ε_cor), and the public seeds. Any block whose tags differ is
reported as failed with no key: a wrong key is never returned as verified.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from station.analysis.errors import KeyDistillationFailed
from station.analysis.key.amplify import amplify, toeplitz_seed
from station.analysis.key.finite import needed_sifted_bits, secure_length
from station.analysis.key.reconcile import CascadeParams, cascade
from station.analysis.key.sampling import sample_qber, sample_size
from station.analysis.key.sifting import SiftedKey
from station.analysis.key.verify import tag_bits_for, verify

Bits = npt.NDArray[np.uint8]

#: f assumed for the "bits needed" sentence when the block gave no measured f (no error seen).
F_EC_TYPICAL = 1.1


@dataclass(frozen=True)
class KeyParams:
    """Distillation parameters.

    ``sample_fraction`` (or ``sample_size``) of the sifted bits is disclosed for the QBER.
    ``qber_tolerance``: the protocol's Q_tol; the block aborts when the sample's QBER exceeds
    it. None uses the sampled QBER itself as Q_tol (an a-posteriori choice; see the docs).
    """

    sample_fraction: float | None = 0.1
    sample_size: int | None = None
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    qber_tolerance: float | None = None
    cascade: CascadeParams = field(default_factory=CascadeParams)


@dataclass(frozen=True)
class KeyResult:
    """Everything a pass report needs about one distilled block.

    Lengths in bits. ``qber_upper`` = sample QBER + μ at ε_sec; ``qber_sample_per_basis`` =
    the sample's QBER in (H/V, D/A), for diagnosis only. ``f_ec`` = leak_ec_bits /
    (n_reconciled · h(Q)) with Q the corrected error rate (NaN if no error). ``secure_length``
    is the TLGR bound (may be negative); ``key_a``/``key_b`` are uint8 0/1 arrays of that
    length when a key exists, else empty. ``no_key_reason`` is one sentence, or None.
    """

    n_sifted: int
    n_sample: int
    qber_sample: float
    qber_upper: float
    qber_sample_per_basis: tuple[float, float]
    n_reconciled: int
    leak_ec_bits: int
    f_ec: float
    qber_corrected: float
    verified: bool
    tag_bits: int
    secure_length: int
    key_a: Bits
    key_b: Bits
    key_sha256: str | None
    no_key_reason: str | None
    eps_sec: float
    eps_cor: float

    @property
    def has_key(self) -> bool:
        return self.no_key_reason is None and len(self.key_a) > 0

    def raise_if_failed(self) -> None:
        """Raise :class:`KeyDistillationFailed` if reconciliation did not verify."""
        if not self.verified:
            raise KeyDistillationFailed(self.no_key_reason or "key verification failed")


def _empty() -> Bits:
    return np.zeros(0, dtype=np.uint8)


def _per_basis_qber(sifted: SiftedKey, sample_idx: npt.NDArray[np.int64]) -> tuple[float, float]:
    """Sample QBER in H/V and in D/A (NaN if the sample has no bit in a basis).

    Informational: the key length uses the pooled sample. A large difference between the
    two points at a polarization-frame error in one basis (physics.md: sin²δ).
    """
    out = []
    err = sifted.a_bits[sample_idx] != sifted.b_bits[sample_idx]
    arm = sifted.arm[sample_idx]
    for basis in (0, 1):
        sel = arm == basis
        out.append(float(np.mean(err[sel])) if np.any(sel) else math.nan)
    return out[0], out[1]


def _short(x: float) -> str:
    """1.5e5 rather than 1.5e+05 in report sentences."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _needed_sentence(
    n_sifted: int, k: int, qber: float, f_ec: float, params: KeyParams, ell: int
) -> str:
    """The one-sentence reason for a negative ℓ, with the sifted bits a block would need."""
    frac = params.sample_fraction if params.sample_fraction is not None else k / n_sifted
    f = f_ec if math.isfinite(f_ec) else F_EC_TYPICAL
    need = needed_sifted_bits(
        qber, f_ec=f, sample_fraction=frac, eps_sec=params.eps_sec, eps_cor=params.eps_cor
    )
    head = (
        f"no key: {n_sifted} sifted bits give a finite-key length of {ell} bits at "
        f"ε_sec = {params.eps_sec:.0e}"
    )
    if need is None:
        return f"{head}; QBER {qber:.1%} gives no key at any block length with f = {f:.2f}"
    return f"{head}; about {_short(need)} are needed at QBER {qber:.1%} with f = {f:.2f}"


def distill(sifted: SiftedKey, *, params: KeyParams, seed: int) -> KeyResult:
    """Distil one block of sifted key; ``seed`` makes every public random choice reproducible."""
    n_sifted = sifted.n
    tag_bits = tag_bits_for(params.eps_cor)
    rng_sample, rng_ec, rng_tag, rng_pa = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    res = KeyResult(
        n_sifted=n_sifted,
        n_sample=0,
        qber_sample=math.nan,
        qber_upper=math.nan,
        qber_sample_per_basis=(math.nan, math.nan),
        n_reconciled=0,
        leak_ec_bits=0,
        f_ec=math.nan,
        qber_corrected=math.nan,
        verified=False,
        tag_bits=tag_bits,
        secure_length=0,
        key_a=_empty(),
        key_b=_empty(),
        key_sha256=None,
        eps_sec=params.eps_sec,
        eps_cor=params.eps_cor,
        no_key_reason=f"no key: {n_sifted} sifted bits cannot be sampled and distilled",
    )
    if n_sifted < 2:
        return res
    k = sample_size(n_sifted, fraction=params.sample_fraction, size=params.sample_size)
    smp = sample_qber(sifted.a_bits, sifted.b_bits, k=k, rng=rng_sample, eps=params.eps_sec)
    res = replace(
        res,
        n_sample=k,
        qber_sample=smp.qber,
        qber_upper=smp.qber_upper,
        qber_sample_per_basis=_per_basis_qber(sifted, smp.sample_idx),
    )
    q_tol = params.qber_tolerance if params.qber_tolerance is not None else smp.qber
    if smp.qber > q_tol:
        return replace(
            res,
            no_key_reason=(
                f"no key: sampled QBER {smp.qber:.2%} exceeds the tolerated {q_tol:.2%}, "
                "so the protocol aborts"
            ),
        )
    a_key = sifted.a_bits[smp.key_idx]  # Alice's side, never disclosed
    b_key = sifted.b_bits[smp.key_idx]  # Bob's side, never disclosed
    rec = cascade(a_key, b_key, qber_estimate=smp.qber, rng=rng_ec, params=params.cascade)
    ver = verify(a_key, rec.b_corrected, tag_bits=tag_bits, rng=rng_tag)
    ell = secure_length(
        smp.n, k, q_tol, rec.leak_bits, eps_sec=params.eps_sec, eps_cor=params.eps_cor
    )
    res = replace(
        res,
        n_reconciled=smp.n,
        leak_ec_bits=rec.leak_bits,
        f_ec=rec.f,
        qber_corrected=rec.qber_corrected,
        verified=ver.verified,
        secure_length=ell,
    )
    if not ver.verified:
        return replace(
            res,
            no_key_reason=(
                f"no key: verification failed, the {tag_bits}-bit tags of the reconciled "
                f"{smp.n}-bit keys differ (residual errors after Cascade)"
            ),
        )
    if ell <= 0:
        # the block size a key needs, at the error rate error correction actually found (a
        # few-bit sample can read 0 %, which would make the sentence promise far too little)
        q_need = max(q_tol, rec.qber_corrected) if math.isfinite(rec.qber_corrected) else q_tol
        return replace(res, no_key_reason=_needed_sentence(n_sifted, k, q_need, rec.f, params, ell))
    pa_seed = toeplitz_seed(smp.n, ell, rng_pa)  # public, drawn after verification
    key_a = amplify(a_key, pa_seed, ell)  # Alice
    key_b = amplify(rec.b_corrected, pa_seed, ell)  # Bob
    digest = hashlib.sha256(np.packbits(key_a).tobytes()).hexdigest()
    return replace(res, key_a=key_a, key_b=key_b, key_sha256=digest, no_key_reason=None)
