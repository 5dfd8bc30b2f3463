"""Time transfer: a station's tagger timescale mapped onto UTC from its PPS edges.

The tagger reads ``reading(t) = t + offset + f·(t − epoch) + W(t − epoch)`` (ps; W a random
walk), and a GPS receiver's PPS marks every true UTC second on one tagger input. Given those
edges and the bundle manifest's *anchor* (one tagger reading and the UTC it corresponds to,
typically from the station computer's NTP clock, ±0.5 s) this module:

1. assigns each edge its integer UTC second. All true edges share one phase modulo 1 s (up
   to f·span, < 1 ms for |f| < 1e-6 over 1000 s), so the phase histogram's peak picks the
   grid; spurious edges land anywhere in the second and fall outside it. The anchor then
   only has to name the second of one edge (it must be good to better than ±0.5 s);
2. fits offset and frequency by an iterated least-squares line with MAD-based rejection
   (the rejection floor is 1 ns, so a jittered true edge is never thrown away while a
   spurious edge inside the phase window survives only if it falls within ~1 ns of the
   trend), then drops residual outliers against a running median of their neighbours (the
   random walk bends the line; the local check follows it). Of several edges in one second
   the earliest is kept (re-triggers follow the true edge);
3. estimates the random walk and the edge jitter from the phase structure function of the
   residuals, D(L) = ⟨(x(k+L) − x(k))²⟩ = σ_W²·L + 2σ_j² (the Allan-variance family for
   white frequency noise plus white phase noise; Allan, Proc. IEEE 54, 221 (1966); NIST
   TN1337), fitted over lags 1–16 s;
4. maps event times by linear interpolation between the neighbouring good edges, which
   follows the walk: between edges the error is ≈ √(σ_j²/2 + σ_W²·g/4) (gap g seconds),
   i.e. ~40 ps for 50 ps jitter and 20 ps/√s (the rig's numbers); outside the edges it
   extrapolates with the fitted frequency.

Without PPS, :func:`from_anchor` maps with the anchor alone and a widening uncertainty
(anchor uncertainty ⊕ frequency uncertainty × elapsed time).

Integer arithmetic: tagger readings and mapped times are int64 ps; float64 only carries
small quantities (residuals, the fractional-frequency correction of an interval).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from station.analysis.errors import NoTimeReference

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
PS = 10**12  #: ps per second
#: rejection floor (ps): true edges scatter by jitter + walk (≪ 1 ns)
REJECT_FLOOR_PS = 1000.0
#: neighbours on each side for the running-median check
_LOCAL_HALF = 4
_MAX_LAG_S = 16


@dataclass(frozen=True)
class Anchor:
    """From the bundle manifest: a tagger reading (ps) and the UTC (POSIX s) it corresponds
    to, with the 1σ uncertainty of that correspondence (e.g. 0.5 s from the station clock)."""

    tagger_ps: int
    posix_s: float
    uncertainty_s: float


@dataclass(frozen=True, eq=False)
class TimeTransfer:
    """The tagger → UTC map of one station for one pass.

    The fitted line: ``reading(U) ≈ offset_ps + (1 + frequency)·(U − ref_posix_s)·1e12``
    (U in POSIX seconds); with PPS the map interpolates between the good edges instead
    (``edge_tagger_ps`` ↔ ``edge_utc_s``), so it follows the random walk.
    ``residual_rms_ps`` is the rms of the edges about the line (jitter + walk);
    ``uncertainty_ps`` the 1σ of a mapped time anywhere between the first and last edge
    (worst gap), or at the anchor for method "anchor" (see :meth:`uncertainty_at_ps`).
    """

    method: Literal["pps", "anchor"]
    ref_posix_s: int
    offset_ps: int
    frequency: float
    random_walk_ps_per_sqrt_s: float
    jitter_ps: float
    residual_rms_ps: float
    uncertainty_ps: float
    edges_used: int
    edges_rejected: int
    frequency_uncertainty: float
    edge_tagger_ps: I64 = field(repr=False, default_factory=lambda: np.empty(0, np.int64))
    edge_utc_s: I64 = field(repr=False, default_factory=lambda: np.empty(0, np.int64))
    pps_accuracy_ps: float = 0.0

    # ------------------------------------------------------------------ mapping

    def to_utc_ps(self, t_tagger: I64, ref_posix_s: int) -> I64:
        """UTC of tagger readings ``t_tagger`` as int64 ps since POSIX second ``ref_posix_s``."""
        t = np.asarray(t_tagger, dtype=np.int64)
        base = (self.ref_posix_s - int(ref_posix_s)) * PS
        if self.edge_tagger_ps.size < 2:
            return _affine(t, self.offset_ps, base, self.frequency / (1.0 + self.frequency))
        r, u = self.edge_tagger_ps, self.edge_utc_s
        n = r.size
        # per interval i (edges i, i+1): elapsed reading minus elapsed true time, as a
        # fraction of the reading: ε_i = (Δr − ΔU·1e12)/Δr (small: frequency + walk)
        dr = np.diff(r)
        eps = np.empty(n, dtype=np.float64)
        eps[:-1] = (dr - np.diff(u) * PS) / dr.astype(np.float64)
        eps[-1] = self.frequency / (1.0 + self.frequency)  # beyond the last edge: the line
        start = (u - self.ref_posix_s) * PS + base
        if t.size > 1 and bool(np.all(t[1:] >= t[:-1])):
            return _map_sorted(t, r, start, eps, self.frequency / (1.0 + self.frequency))
        i = np.searchsorted(r, t, side="right") - 1
        below = i < 0
        i0 = np.clip(i, 0, n - 1)
        e = np.where(below, self.frequency / (1.0 + self.frequency), eps[i0])
        dt = t - r[i0]
        out: I64 = start[i0] + dt - np.rint(dt * e).astype(np.int64)
        return out

    def uncertainty_at_ps(self, t_tagger: I64) -> F64:
        """1σ (ps) of the mapped time of each reading: jitter and walk between edges,
        walk and frequency error beyond them; anchor ⊕ frequency × elapsed without PPS."""
        t = np.asarray(t_tagger, dtype=np.int64)
        acc2 = self.pps_accuracy_ps**2
        if self.edge_tagger_ps.size < 2:
            dt_s = (t - self.offset_ps).astype(np.float64) / PS
            var = self.uncertainty_ps**2 + (self.frequency_uncertainty * dt_s * PS) ** 2
            out: F64 = np.sqrt(var)
            return out
        r = self.edge_tagger_ps
        sj2, sw2 = self.jitter_ps**2, self.random_walk_ps_per_sqrt_s**2
        i = np.searchsorted(r, t, side="right") - 1
        inside = (i >= 0) & (i < r.size - 1)
        ii = np.clip(i, 0, r.size - 2)
        gap = (r[ii + 1] - r[ii]).astype(np.float64)
        s = np.clip((t - r[ii]).astype(np.float64) / gap, 0.0, 1.0)
        var_in = sj2 * ((1 - s) ** 2 + s**2) + sw2 * (gap / PS) * s * (1 - s)
        nearest = np.where(t < r[0], r[0], r[-1])
        d_s = np.abs((t - nearest).astype(np.float64)) / PS
        var_out = sj2 + sw2 * d_s + (self.frequency_uncertainty * d_s * PS) ** 2
        out = np.sqrt(np.where(inside, var_in, var_out) + acc2)
        return out


def _map_sorted(t: I64, r: I64, start: I64, eps: F64, eps_line: float) -> I64:
    """:meth:`TimeTransfer.to_utc_ps` for sorted readings: one slice per edge interval (a
    few hundred), in-place arithmetic, no per-event gather (~10x faster than the general
    path on 1e7 events). Before the first edge the line's ``eps_line`` applies."""
    out = np.empty_like(t)
    bounds = np.searchsorted(t, r, side="left")  # first reading ≥ each edge
    edges = [0, *bounds.tolist(), t.size]
    for j in range(-1, r.size):
        lo, hi = edges[j + 1], edges[j + 2]
        if hi == lo:
            continue
        jj = max(j, 0)
        e = eps_line if j < 0 else float(eps[jj])
        dt = np.subtract(t[lo:hi], r[jj])
        corr = dt.astype(np.float64)
        corr *= e
        np.rint(corr, out=corr)
        dt -= corr.astype(np.int64)
        dt += start[jj]
        out[lo:hi] = dt
    return out


def _affine(t: I64, offset_ps: int, base: int, eps: float) -> I64:
    """base + (t − offset) − rint((t − offset)·eps): exact int64 main term."""
    dt = t - np.int64(offset_ps)
    out: I64 = base + dt - np.rint(dt * eps).astype(np.int64)
    return out


# ---------------------------------------------------------------------- no PPS


def from_anchor(
    anchor: Anchor, *, freq_uncertainty: float = 1e-6, edges_rejected: int = 0
) -> TimeTransfer:
    """The map from the manifest anchor alone (no PPS): nominal rate, widening uncertainty.

    ``freq_uncertainty`` is the tagger's fractional frequency error bound (1e-6 for a
    free-running TCXO; a 10 MHz-disciplined tagger is < 1e-9): after Δt seconds the map is
    off by up to that × Δt on top of the anchor's own uncertainty.
    """
    if not (math.isfinite(anchor.posix_s) and anchor.uncertainty_s >= 0.0):
        raise NoTimeReference(
            f"the anchor ({anchor.posix_s} s ± {anchor.uncertainty_s} s) is not a usable UTC "
            "reference: the manifest needs a finite time and a non-negative uncertainty"
        )
    ref = math.floor(anchor.posix_s)
    offset = anchor.tagger_ps - round((anchor.posix_s - ref) * PS)
    unc = anchor.uncertainty_s * PS
    return TimeTransfer(
        "anchor", ref, offset, 0.0, 0.0, 0.0, 0.0, unc, 0, edges_rejected, freq_uncertainty
    )


# ---------------------------------------------------------------------- PPS


def fit_pps(
    pps_tagger_ps: I64,
    anchor: Anchor,
    *,
    max_frequency: float = 1e-6,
    pps_accuracy_ps: float = 0.0,
    freq_uncertainty: float = 1e-6,
) -> TimeTransfer:
    """Fit the tagger → UTC map to PPS edge readings (any order; extra, missing, jittered).

    ``max_frequency`` bounds |f| (sets the phase-histogram window, ≥ 20 µs);
    ``pps_accuracy_ps`` the receiver's PPS accuracy against UTC, added in quadrature.
    Fewer than two usable edges fall back to :func:`from_anchor` (logged).
    """
    r = np.sort(np.asarray(pps_tagger_ps, dtype=np.int64))
    if r.size < 2:
        log.warning("%d PPS edge(s): falling back to the manifest anchor", r.size)
        return from_anchor(anchor, freq_uncertainty=freq_uncertainty, edges_rejected=r.size)
    ref_reading = int(r[r.size // 2])
    x = r - ref_reading
    span_s = float(r[-1] - r[0]) / PS
    phase0, d = _grid_phase(x, max_frequency, span_s)
    width = max(20e-6, 2.0 * max_frequency * span_s + 1e-6) * PS
    cand = np.flatnonzero(np.abs(d) <= 1.5 * width)
    k_all = (x[cand] - phase0 - d[cand]) // PS  # exact: x − phase0 − d ≡ 0 (mod 1e12)
    # One edge per second, the earliest: re-triggers (cable ringing, a noisy discriminator)
    # follow the true edge; a spurious edge *preceding* it inside the phase window costs that
    # second only (the line check below rejects it). x is sorted, so k is non-decreasing.
    first = np.ones(k_all.size, dtype=bool)
    first[1:] = k_all[1:] != k_all[:-1]
    cand, k = cand[first], k_all[first]
    y = d[cand].astype(np.float64)
    keep = _robust_line(k, y)
    keep &= _local_check(k, y, keep)
    idx = np.flatnonzero(keep)
    if idx.size < 2:
        log.warning("only %d PPS edge(s) on a 1 s grid: falling back to the anchor", idx.size)
        return from_anchor(anchor, freq_uncertainty=freq_uncertainty, edges_rejected=r.size)
    kg, yg = k[idx], y[idx]
    a, b, sb = _line(kg.astype(np.float64), yg)
    freq = b / PS
    # integer UTC second of grid index 0, from the anchor (int arithmetic for the reading)
    reading0 = ref_reading + phase0 + round(a)
    utc0 = anchor.posix_s + (reading0 - anchor.tagger_ps) / PS / (1.0 + freq)
    second0 = round(utc0)
    if 1.0 - abs(utc0 - second0) < 3.0 * anchor.uncertainty_s:
        # the neighbouring second is within 3σ of the anchor: the assignment may be off by 1 s
        log.warning(
            "the anchor (±%.3f s) is %.3f s from the PPS second it names; the next second is "
            "within 3σ, so UTC may be off by one whole second (coincidences will show it)",
            anchor.uncertainty_s,
            utc0 - second0,
        )
    res = yg - (a + b * kg)
    walk, jitter = _structure(kg, res)
    gaps = np.diff(kg)
    worst = float(gaps.max())
    unc = math.sqrt(jitter**2 * 0.5 + walk**2 * worst / 4.0 + pps_accuracy_ps**2)
    return TimeTransfer(
        method="pps",
        ref_posix_s=int(second0),
        offset_ps=int(reading0),
        frequency=freq,
        random_walk_ps_per_sqrt_s=walk,
        jitter_ps=jitter,
        residual_rms_ps=float(np.sqrt(np.mean(res**2))),
        uncertainty_ps=unc,
        edges_used=int(idx.size),
        edges_rejected=int(r.size - idx.size),
        # LSQ error of the slope ⊕ the walk's: residuals of a walk are correlated, so the
        # formal error alone is optimistic by ~σ_W/√T
        frequency_uncertainty=math.hypot(sb, walk / math.sqrt(max(span_s, 1.0))) / PS,
        edge_tagger_ps=r[cand[idx]],
        edge_utc_s=(second0 + kg).astype(np.int64),
        pps_accuracy_ps=pps_accuracy_ps,
    )


def _grid_phase(x: I64, max_frequency: float, span_s: float) -> tuple[int, I64]:
    """Phase (ps in [0, 1e12)) of the 1 s grid most edges sit on, and each edge's signed
    distance (ps) from it modulo 1 s: a circular histogram's 3-bin peak."""
    width = max(20e-6, 2.0 * max_frequency * span_s + 1e-6)
    nb = max(3, int(1.0 / width))
    ph = np.mod(x, PS)
    bins = (ph * nb) // PS  # ph < 1e12, nb ≤ 5e4: no overflow
    counts = np.bincount(bins, minlength=nb)
    c3 = counts + np.roll(counts, 1) + np.roll(counts, -1)
    b = int(np.argmax(c3))
    near = np.abs((bins - b + nb // 2) % nb - nb // 2) <= 1
    # refine to the circular median of the edges in the peak (robust to a lone extra edge)
    centre = (2 * b + 1) * PS // (2 * nb)
    dd = (ph[near] - centre + PS // 2) % PS - PS // 2
    phase0 = int((centre + int(np.median(dd))) % PS)
    d: I64 = (ph - phase0 + PS // 2) % PS - PS // 2
    return phase0, d


def _line(k: F64, y: F64) -> tuple[float, float, float]:
    """Least-squares y = a + b·k: (a, b, standard error of b)."""
    km = float(k.mean())
    kc = k - km
    sxx = float(np.sum(kc * kc))
    b = float(np.sum(kc * (y - y.mean()))) / sxx if sxx > 0 else 0.0
    a = float(y.mean()) - b * km
    if k.size > 2 and sxx > 0:
        s2 = float(np.sum((y - a - b * k) ** 2)) / (k.size - 2)
        return a, b, math.sqrt(s2 / sxx)
    return a, b, 0.0


def _robust_line(k: I64, y: F64) -> npt.NDArray[np.bool_]:
    """Inliers of an iterated least-squares line (reject > max(6σ_MAD, 1 ns))."""
    kf = k.astype(np.float64)
    keep = np.ones(k.size, dtype=bool)
    if k.size < 3:
        return keep
    # start from the median slope of consecutive edges (robust against a few outliers)
    dk = np.diff(kf)
    ok = dk > 0
    b = float(np.median(np.diff(y)[ok] / dk[ok])) if ok.any() else 0.0
    a = float(np.median(y - b * kf))
    for _ in range(10):
        res = y - (a + b * kf)
        mad = 1.4826 * float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        new = np.abs(res) <= max(6.0 * mad, REJECT_FLOOR_PS)
        if new.sum() < 2:
            break
        if np.array_equal(new, keep):
            break
        keep = new
        a, b, _ = _line(kf[keep], y[keep])
    return keep


def _running_median(v: F64) -> F64:
    """Median of each element's ±_LOCAL_HALF neighbours, itself excluded (edges padded)."""
    h = _LOCAL_HALF
    padded = np.concatenate([np.full(h, v[0]), v, np.full(h, v[-1])])
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1)
    others = np.concatenate([win[:, :h], win[:, h + 1 :]], axis=1)
    out: F64 = np.median(others, axis=1)
    return out


def _local_check(k: I64, y: F64, keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Keep edges within max(8σ, 1 ns) of the running median of their kept neighbours,
    where the trend is the line through them (the walk bends a global line)."""
    out = keep.copy()
    idx = np.flatnonzero(keep)
    if idx.size < 2 * _LOCAL_HALF + 1:
        return out
    kf, yv = k[idx].astype(np.float64), y[idx]
    a, b, _ = _line(kf, yv)
    res = yv - (a + b * kf)
    dev = res - _running_median(res)
    sigma = 1.4826 * float(np.median(np.abs(dev)))
    out[idx[np.abs(dev) > max(8.0 * sigma, REJECT_FLOOR_PS)]] = False
    return out


def _structure(k: I64, res: F64) -> tuple[float, float]:
    """(σ_W ps/√s, σ_j ps) from D(L) = σ_W²·L + 2σ_j² over lags 1..16 s (see module doc)."""
    n = int(k[-1] - k[0]) + 1
    grid = np.full(n, np.nan)
    grid[k - k[0]] = res
    lags, dl = [], []
    for lag in range(1, min(_MAX_LAG_S, max(1, n // 4)) + 1):
        diff = grid[lag:] - grid[:-lag]
        diff = diff[np.isfinite(diff)]
        if diff.size >= 4:
            lags.append(float(lag))
            dl.append(float(np.mean(diff**2)))
    if len(lags) < 2:
        return 0.0, float(np.std(res)) if res.size else 0.0
    intercept, slope, _ = _line(np.array(lags), np.array(dl))
    return math.sqrt(max(slope, 0.0)), math.sqrt(max(intercept, 0.0) / 2.0)
