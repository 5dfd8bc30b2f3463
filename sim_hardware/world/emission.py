"""Entangled pairs that reach the stations, per 10 ms emission slice (3-way thinning).

Drawing all 5.9 M pairs/s and then losing 99.99 % of them would be wasteful. For emission
slice k (emission times [kΔ, (k+1)Δ), Δ = 10 ms) with station transmittances p_A, p_B
(link × scintillation × best detector efficiency, known to both stations from keyed
streams), the pairs reaching

    both A and B ~ Poisson(R Δ p_A p_B), A only ~ Poisson(R Δ p_A (1-p_B)),
    B only ~ Poisson(R Δ p_B (1-p_A))

are drawn directly; losses at A and B are independent, so this is exact. Each reaching
pair carries 64 random bits per station: bit 63 = arm of the passive basis choice (0 H/V,
1 D/A), bits 37-62 = outcome uniform, bits 0-25 = acceptance uniform (the station-local
thinning by pointing coupling and per-channel efficiency / best efficiency). With the arm
and the top outcome bit on top, ``bits >> 62`` is the passive channel index 2·arm + minus
at P(+) = 1/2 in one operation (see :func:`channel_index`). Common draws (counts, pairs
reaching both, their bits for both stations) come from streams keyed by the slice only;
"only" pairs from streams keyed by (slice, station).

Polarization (Werner state of visibility V, body frame): the station listed first ("A")
samples its outcome x_A = ±1 from its marginal (1/2); station B samples conditionally,
P(x_B = +1 | x_A) = (1 + V x_A E(a, b))/2 with E = cos 2(a-b) for Φ+ and -cos 2(a+b) for
Ψ+, a and b the body-frame analyzer angles. This gives the textbook joint probabilities
(1 + V x_A x_B E)/4. No local sampling can (Bell), so B's outcomes use A's analyzer angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim_hardware.world.rng import Stream, generator

F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
SLICE_S = 0.01
SLICE_PS = 10**10
_MASK26 = np.uint64((1 << 26) - 1)
_SCALE26 = 1.0 / (1 << 26)


@dataclass(frozen=True, slots=True)
class SliceDraws:
    """Pairs of one slice reaching one station: emission offsets (s) and that station's bits.

    ``n_both`` leading entries are pairs that also reach the other station; for those,
    ``first_bits`` holds the first-listed station's bits (to condition the outcome on).
    """

    t_emit: F64
    bits: U64
    n_both: int
    first_bits: U64


def draw_slice(
    seed: int, k: int, station: int, p: tuple[float, float], pair_rate_hz: float
) -> SliceDraws:
    """The pairs emitted in slice ``k`` that reach ``station`` (0 or 1)."""
    p_a, p_b = p
    scale = pair_rate_hz * SLICE_S
    lams = np.array([scale * p_a * p_b, scale * p_a * (1.0 - p_b), scale * p_b * (1.0 - p_a)])
    n_both, n_a, n_b = (int(n) for n in generator(seed, Stream.COUNTS, k).poisson(lams))
    n_only = n_a if station == 0 else n_b
    n = n_both + n_only
    t_emit = np.empty(n)
    if n_only:
        g = generator(seed, Stream.PAIRS_ONLY, k, station)
        g.random(out=t_emit[n_both:])
        # Drawn n long so the both-pairs' bits can be written in front without another
        # array; the first n_both words of this stream are never used.
        bits = g.bit_generator.random_raw(n)
    else:
        bits = np.empty(n, np.uint64)
    if n_both:
        g = generator(seed, Stream.PAIRS_BOTH, k)
        g.random(out=t_emit[:n_both])
        bits_both = g.bit_generator.random_raw((2, n_both))
        bits[:n_both] = bits_both[station]
        first_bits = bits_both[0]
    else:
        first_bits = np.empty(0, np.uint64)
    t_emit *= SLICE_S
    return SliceDraws(t_emit, bits, n_both, first_bits)


def channel_index(bits: U64, passive: bool) -> U64:
    """Analyzer output index 2·arm + minus (passive) or minus (active), for P(+) = 1/2.

    "minus" is outcome_uniform >= 1/2, i.e. the top bit of the outcome field: exact.
    """
    out: U64 = bits >> np.uint64(62)
    if not passive:
        out &= np.uint64(1)
    return out


def arm_of(bits: U64) -> npt.NDArray[np.uint8]:
    """Passive basis choice: 0 = H/V arm, 1 = D/A arm (50:50 beam splitter)."""
    return (bits >> np.uint64(63)).astype(np.uint8)


def outcome_uniform(bits: U64) -> F64:
    out: F64 = ((bits >> np.uint64(37)) & _MASK26).astype(np.float64) * _SCALE26
    return out


def accept_field(bits: U64) -> U64:
    """The acceptance uniform as a 26-bit integer x: uniform = x / 2^26.

    ``uniform < a`` <=> ``x < ceil(a 2^26)`` exactly (x integer): compare integers.
    """
    out: U64 = bits & _MASK26
    return out


def correlation(state: str, a_deg: F64, b_deg: float | F64) -> F64:
    """Ideal E(a, b): cos 2(a-b) for Φ+, -cos 2(a+b) for Ψ+ (DESIGN.md)."""
    if state == "phi+":
        out: F64 = np.cos(np.radians(2.0 * (a_deg - b_deg)))
    else:
        out = -np.cos(np.radians(2.0 * (a_deg + b_deg)))
    return out


def scintillation_factors(seed: int, station: int, block: int, sigma_ln: float) -> F64:
    """Unit-mean lognormal factors exp(σN - σ²/2) for 1024 consecutive slices."""
    z = generator(seed, Stream.SCINTILLATION, station, block).standard_normal(1024)
    out: F64 = np.exp(sigma_ln * z - 0.5 * sigma_ln * sigma_ln)
    return out


def slice_of(t: float) -> int:
    """Index of the emission slice containing POSIX time ``t``."""
    return math.floor(t / SLICE_S)
