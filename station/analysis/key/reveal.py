"""Which detections' outcomes the live classical channel reveals (key mode), by one rule.

Why: during a key-mode pass each station publishes the timing and basis of every detection
but the *outcome* of only a random sample, so the coordinator can estimate the QBER while
the satellite is overhead (as QBER estimation by public sampling does in BB84/BBM92; the
revealed bits are then dropped from the key). Both stations must reveal the outcomes of the
*same* photon pairs without talking, and the offline analysis must find exactly those
detections again from the bundle. The rule therefore depends only on what each station has
and the bundle records:

1. the station's **rule clock**: tagger reading → UTC from the latest PPS edge at or before
   the event (its integer UTC second counted from the rule anchor, an edge and the second
   the daemon's timescale tracker gave it), plus the tagger ps elapsed since that edge.
   Only edges on the anchor's 1 s grid (±1 ms) count, so a spurious edge cannot shift the
   clock. Events before the anchor edge are never revealed. Error vs UTC: the tagger's
   frequency error × < 1 s (µs at 1 ppm);
2. the **emission time** t_e = t_rule − τ(t_rule), τ the vacuum light time from the
   satellite (SGP4 from the pass's TLE) to the station, evaluated at integer UTC seconds in
   fixed 64 s blocks (so the daemon, one frame at a time, and the analysis, all at once,
   compute bit-identical knots) and interpolated linearly (curvature error < 0.1 µs);
   polar motion and troposphere are left out (< 50 ns);
3. the **slot** ⌊t_e / slot⌋ (default 10 ms, counted from the POSIX epoch) is revealed iff
   splitmix64(slot ⊕ seed·φ) / 2⁶⁴ < fraction (Steele, Lea & Flood, OOPSLA 2014 "Fast
   splittable pseudorandom number generators": the splitmix64 finaliser).

Both photons of a pair share t_e; the two stations' estimates differ by the TLE's
along-track error seen from two places (µs) and the rule clocks' errors (µs), so a pair is
judged differently by the two stations only within a few µs of a slot edge: ~1e-3 of the
revealed pairs at 10 ms slots. The consumer uses pairs revealed on both sides; the offline
key drops a coincidence revealed on *either* side, and widens every revealed slot by
``guard_ps`` on both ends as insurance against numerical differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from station.tracking.site import Site

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]
PS = 10**12

DEFAULT_FRACTION = 0.1  #: share of emission slots whose outcomes are revealed (key mode)
DEFAULT_SEED = 0x51475321  #: both stations must use the same seed (the campaign's)
DEFAULT_SLOT_PS = 10 * 10**9  #: 10 ms emission slots
DEFAULT_GUARD_PS = 2 * 10**6  #: offline: revealed slots widened by 2 µs each side
GRID_TOLERANCE_PS = 10**9  #: a PPS edge counts if within 1 ms of the anchor's 1 s grid
KNOT_BLOCK_S = 64  #: light-time knots are computed in aligned blocks of this many seconds
_GOLDEN = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class RevealParams:
    """The rule's parameters (recorded in the bundle manifest as ``live_channel``)."""

    fraction: float = DEFAULT_FRACTION
    seed: int = DEFAULT_SEED
    slot_ps: int = DEFAULT_SLOT_PS
    guard_ps: int = DEFAULT_GUARD_PS

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"reveal fraction {self.fraction} outside [0, 1]")
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"reveal seed {self.seed} must fit in 64 unsigned bits")
        if self.slot_ps <= 0 or PS % self.slot_ps:
            raise ValueError(f"slot {self.slot_ps} ps must divide one second (1e12 ps)")
        if not 0 <= self.guard_ps < self.slot_ps // 4:
            raise ValueError(f"guard {self.guard_ps} ps must be in [0, slot/4)")

    def to_json(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "seed": self.seed,
            "slot_s": self.slot_ps / PS,
            "guard_s": self.guard_ps / PS,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RevealParams:
        return cls(
            fraction=float(d["fraction"]),
            seed=int(d["seed"]),
            slot_ps=round(float(d["slot_s"]) * PS),
            guard_ps=round(float(d.get("guard_s", DEFAULT_GUARD_PS / PS)) * PS),
        )


def slot_revealed(slots: I64, params: RevealParams) -> B:
    """Whether each emission slot (int64 index since the POSIX epoch) is revealed."""
    with np.errstate(over="ignore"):
        z = np.asarray(slots, dtype=np.int64).view(np.uint64) ^ np.uint64(
            (params.seed * _GOLDEN) % 2**64
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    out: B = u < params.fraction
    return out


@dataclass
class LightTime:
    """Vacuum light time τ (ps) from the satellite to one station at integer UTC seconds,
    cached in aligned blocks of :data:`KNOT_BLOCK_S` (bit-identical however it is asked)."""

    tle: tuple[str, str]
    site: Site
    _blocks: dict[int, F64] = field(default_factory=dict, repr=False)

    def knots(self, first_s: int, last_s: int) -> F64:
        """τ (ps) at every integer POSIX second first_s..last_s inclusive."""
        parts = []
        for blk in range(first_s // KNOT_BLOCK_S, last_s // KNOT_BLOCK_S + 1):
            if blk not in self._blocks:
                self._blocks[blk] = self._compute(blk)
            parts.append(self._blocks[blk])
        allk = np.concatenate(parts)
        lo = first_s - (first_s // KNOT_BLOCK_S) * KNOT_BLOCK_S
        out: F64 = allk[lo : lo + last_s - first_s + 1]
        return out

    def _compute(self, blk: int) -> F64:
        from sgp4.api import WGS72, Satrec

        from station.analysis.orbitprior import light_time_s
        from station.tracking.earth import default_eop

        sat = Satrec.twoline2rv(self.tle[0], self.tle[1], WGS72)
        t = (blk * KNOT_BLOCK_S + np.arange(KNOT_BLOCK_S + 1)).astype(np.float64)
        tau = light_time_s(sat, self.site, t, default_eop(), polar_motion=False)
        return np.asarray(tau[:KNOT_BLOCK_S] * PS, dtype=np.float64)

    def at(self, sec: I64, frac_ps: I64) -> I64:
        """τ (int64 ps) at UTC second ``sec`` + ``frac_ps`` (0 ≤ frac < 1e12), linear."""
        if sec.size == 0:
            return np.zeros(0, np.int64)
        lo, hi = int(sec.min()), int(sec.max()) + 1
        k = self.knots(lo, hi)
        i = sec - lo
        f = frac_ps.astype(np.float64) / PS
        out: I64 = np.rint(k[i] + f * (k[i + 1] - k[i])).astype(np.int64)
        return out


@dataclass(frozen=True)
class RuleAnchor:
    """The PPS edge (tagger ps) that starts the rule clock and its UTC second (POSIX)."""

    tagger_ps: int
    posix_s: int

    def to_json(self) -> dict[str, int]:
        return {"tagger_ps": self.tagger_ps, "posix_s": self.posix_s}


def grid_edges(edges: I64, anchor: RuleAnchor) -> tuple[I64, I64]:
    """The edges on the anchor's 1 s grid at or after it: (tagger ps, UTC second), sorted,
    one per second (the earliest)."""
    e = np.sort(np.asarray(edges, dtype=np.int64))
    e = e[e >= anchor.tagger_ps]
    d = e - anchor.tagger_ps
    k = (d + PS // 2) // PS
    on = np.abs(d - k * PS) <= GRID_TOLERANCE_PS
    e, k = e[on], k[on]
    first = np.ones(k.size, dtype=bool)
    first[1:] = k[1:] != k[:-1]
    return e[first], anchor.posix_s + k[first]


def emission_slots(
    t_ps: I64, edges: I64, anchor: RuleAnchor, light: LightTime, slot_ps: int
) -> tuple[I64, I64, B]:
    """Per event: (slot index, emission time in ps within its UTC-second frame, usable).

    ``usable`` is False before the anchor edge (no rule clock yet). The emission ps is
    returned relative to the anchor second (int64) for the offline guard test.
    """
    t = np.asarray(t_ps, dtype=np.int64)
    e, sec = grid_edges(edges, anchor)
    usable = np.zeros(t.size, dtype=bool)
    slots = np.zeros(t.size, dtype=np.int64)
    rel_e = np.zeros(t.size, dtype=np.int64)
    if e.size == 0 or t.size == 0:
        return slots, rel_e, usable
    i = np.searchsorted(e, t, side="right") - 1
    usable = i >= 0
    ii = np.clip(i, 0, None)
    rel = (sec[ii] - anchor.posix_s) * PS + (t - e[ii])  # ps since the anchor second
    whole = rel // PS
    tau = light.at(anchor.posix_s + whole, rel - whole * PS)
    rel_e = rel - tau
    per_s = PS // slot_ps
    slots = anchor.posix_s * per_s + rel_e // slot_ps
    return slots, rel_e, usable


def revealed_mask(
    t_ps: I64,
    edges: I64,
    anchor: RuleAnchor,
    light: LightTime,
    params: RevealParams,
    *,
    guard: bool = False,
) -> B:
    """Which events' outcomes the rule reveals (``guard``: widen each revealed slot by
    ``params.guard_ps`` on both ends, for the offline drop)."""
    slots, rel_e, usable = emission_slots(t_ps, edges, anchor, light, params.slot_ps)
    out = slot_revealed(slots, params) & usable
    if guard and params.guard_ps > 0:
        per_s = PS // params.slot_ps
        base = anchor.posix_s * per_s
        for g in (-params.guard_ps, params.guard_ps):
            s2 = base + (rel_e + g) // params.slot_ps
            out |= slot_revealed(s2, params) & usable
    return out


def fraction_check(mask: B) -> float:
    """Share of events revealed (for reports); NaN for no events."""
    return float(mask.mean()) if mask.size else math.nan
