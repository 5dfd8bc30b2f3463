"""Coincidence matching between two stations' event streams, accidentals and the 4x4 matrix.

Inputs are the two stations' sorted int64 picosecond timestamps ``t_a`` and ``t_b`` with B
already brought onto A's timescale by the offset/drift stage (``station.analysis`` offset
finder), up to a constant ``shift_ps``. A *coincidence* is a pair with
``|t_b - t_a - shift_ps| <= window_ps / 2`` (both ends inclusive; integer picoseconds, so the
half-width is ``window_ps // 2``).

Matching rule (one event is used at most once; linear two-pointer merge as qcrypto
``costream.c`` does, see reference/timetag.md §1.4):

* A events are taken in time order. For each one, B events that are too early for it are
  dropped for good (they are too early for every later A event as well).
* Among the remaining B events inside its window, the A event takes the *nearest* one
  (ties go to the earlier B event); every B event before the taken one is dropped too.

So the pairs are order preserving (``idx_a`` and ``idx_b`` both strictly increase) and a
pair whose two events see nobody else inside their windows (the overwhelmingly common case:
singles rate x window ~ 1e-3 for Micius-like links) is always found, whatever the rule. The
rule only decides the rare clusters where two events of one station fall in one window; it
is greedy, not a maximum matching, which biases the count by O((rate x window)^2).

Accidentals are estimated as in ``costream`` (reference/timetag.md §1.4, default displaced
by 20 ns): the same matcher run with the window displaced by several offsets, far outside the
correlation peak, where every pair is accidental; their mean per window estimates the
accidentals inside the true window.

The hot loops are compiled with numba (``cache=True`` so the compile is paid once per
machine, not per process); the bench (``bench/bench_coincidences.py``) measures the matcher
against a plain numpy ``searchsorted`` implementation of the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from drivers.datatypes import ChannelMap

I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]

#: The tagger channel numbers of (H, V, D, A) at one station.
ChannelOrder = ChannelMap

__all__ = [
    "AccidentalEstimate",
    "ChannelOrder",
    "Pairs",
    "accidentals",
    "count_matrix",
    "histogram",
    "match",
    "window_from_width",
]


@dataclass(frozen=True)
class Pairs:
    """Matched coincidences: indices into ``t_a`` / ``t_b`` and the residual delay.

    ``dt_ps = t_b[idx_b] - t_a[idx_a] - shift_ps`` (int64 ps, within ±window/2), i.e. the
    pair's position relative to the window centre: its spread is the timing jitter of the
    two stations combined, its mean the residual offset the tracking has left.
    """

    idx_a: I64Array
    idx_b: I64Array
    dt_ps: I64Array
    window_ps: int
    shift_ps: int

    def __len__(self) -> int:
        return int(self.idx_a.shape[0])


@dataclass(frozen=True)
class AccidentalEstimate:
    """Accidental coincidences from windows displaced away from the correlation peak.

    ``counts[k]`` pairs were found with the window displaced by ``displacements_ps[k]``.
    ``mean`` is the estimate of the accidentals inside the true window (same width);
    ``std`` is the sample standard deviation across displaced windows (a check that the
    background is flat: for Poisson counts it should be close to ``sqrt(mean)``) and
    ``sigma_mean`` the Poisson uncertainty of ``mean`` itself, ``sqrt(sum counts) / K``.
    ``matrix`` is the mean 4x4 matrix of accidentals per window (rows A's H, V, D, A; cols
    B's), when channels were given, so a count matrix can be corrected by subtraction.
    ``times_ps`` are the A-side times of every displaced pair (sorted): binned and divided by
    ``len(displacements_ps)`` they give the accidentals per time bin (for CAR vs time).
    """

    displacements_ps: tuple[int, ...]
    window_ps: int
    counts: I64Array
    mean: float
    std: float
    sigma_mean: float
    matrix: F64Array | None
    times_ps: I64Array


# --------------------------------------------------------------------------- kernels


@numba.njit(cache=True, nogil=True)
def _match_kernel(
    ta: I64Array,
    tb: I64Array,
    shift: int,
    half: int,
    out_a: I64Array,
    out_b: I64Array,
    out_dt: I64Array,
) -> int:  # pragma: no cover - compiled; exercised through match()
    """Greedy nearest two-pointer merge (rule in the module docstring).

    Returns the number of pairs written, or -1 / -2 if ``ta`` / ``tb`` is found unsorted on
    an event the merge visits.
    """
    na = ta.shape[0]
    nb = tb.shape[0]
    j = 0
    n = 0
    prev = ta[0] if na > 0 else 0
    for i in range(na):
        t = ta[i]
        if t < prev:
            return -1
        prev = t
        c = t + shift
        lo = c - half
        while j < nb and tb[j] < lo:
            j += 1
            if j < nb and tb[j] < tb[j - 1]:
                return -2
        if j >= nb:
            break
        d = tb[j] - c
        if d > half:
            continue
        best = j
        bd = abs(d)
        k = j + 1
        while k < nb:
            tk = tb[k]
            if tk < tb[k - 1]:
                return -2
            dk = tk - c
            if dk > half:
                break
            adk = abs(dk)
            if adk > bd:  # |tb - c| is unimodal over sorted tb: past the minimum
                break
            if adk < bd:  # equal distance (duplicate or mirror image): keep the earlier
                best = k
                bd = adk
            k += 1
        out_a[n] = i
        out_b[n] = best
        out_dt[n] = tb[best] - c
        n += 1
        j = best + 1
    return n


@numba.njit(cache=True, nogil=True)
def _histogram_kernel(
    ta: I64Array, tb: I64Array, shift: int, half_range: int, bin_ps: int, counts: I64Array
) -> None:  # pragma: no cover - compiled; exercised through histogram()
    """Every (a, b) pair with ``t_b - t_a - shift`` in [-half_range, half_range), binned."""
    na = ta.shape[0]
    nb = tb.shape[0]
    nbins = counts.shape[0]
    j = 0
    for i in range(na):
        c = ta[i] + shift
        lo = c - half_range
        while j < nb and tb[j] < lo:
            j += 1
        k = j
        while k < nb:
            idx = (tb[k] - lo) // bin_ps
            if idx >= nbins:
                break
            counts[idx] += 1
            k += 1


# --------------------------------------------------------------------------- public API


def _as_times(t: npt.ArrayLike, name: str) -> I64Array:
    arr = np.asarray(t)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of int64 ps, got shape {arr.shape}")
    if arr.size and arr.dtype != np.int64 and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer picoseconds (int64), got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _check_sorted(t: I64Array, name: str) -> None:
    if t.size > 1 and bool(np.any(t[1:] < t[:-1])):
        raise ValueError(f"{name} must be sorted in time (non-decreasing int64 ps)")


def match(t_a: npt.ArrayLike, t_b: npt.ArrayLike, *, window_ps: int, shift_ps: int = 0) -> Pairs:
    """Pair A and B events with ``|t_b - t_a - shift_ps| <= window_ps / 2`` (rule: module doc).

    ``window_ps`` is the full width in ps (see :func:`window_from_width`); ``shift_ps`` the
    constant delay of B relative to A left after offset removal. Linear time, one pass.
    Raises ValueError if the window is not positive or a stream is found unsorted.
    """
    if window_ps <= 0:
        raise ValueError(f"window_ps must be > 0 ps, got {window_ps}")
    ta = _as_times(t_a, "t_a")
    tb = _as_times(t_b, "t_b")
    cap = min(ta.shape[0], tb.shape[0])
    out_a = np.empty(cap, dtype=np.int64)
    out_b = np.empty(cap, dtype=np.int64)
    out_dt = np.empty(cap, dtype=np.int64)
    n = int(_match_kernel(ta, tb, int(shift_ps), int(window_ps) // 2, out_a, out_b, out_dt))
    if n < 0:
        name = "t_a" if n == -1 else "t_b"
        raise ValueError(f"{name} must be sorted in time (non-decreasing int64 ps)")
    # Copy the used prefix so the (mostly untouched) min(n_a, n_b) buffers are released.
    return Pairs(
        idx_a=out_a[:n].copy(),
        idx_b=out_b[:n].copy(),
        dt_ps=out_dt[:n].copy(),
        window_ps=int(window_ps),
        shift_ps=int(shift_ps),
    )


def accidentals(
    t_a: npt.ArrayLike,
    t_b: npt.ArrayLike,
    *,
    window_ps: int,
    displacements_ps: Sequence[int],
    shift_ps: int = 0,
    ch_a: npt.ArrayLike | None = None,
    ch_b: npt.ArrayLike | None = None,
    channels_a: ChannelOrder | None = None,
    channels_b: ChannelOrder | None = None,
) -> AccidentalEstimate:
    """Accidentals per window, from the same matcher run at ``shift_ps + D`` for each D.

    Each displacement must exceed the window (``|D| > window_ps``) so a displaced window
    never overlaps the true one; choose them beyond the peak's tails and any afterpulsing
    or cross-talk structure (costream uses 20 ns; e.g. ±20, ±40, ±60 ns). Several windows on
    both sides average out a slope of the background. Pass the channel arrays (``ch_a``,
    ``ch_b``: uint8, one per event) and both channel orders to get the 4x4 matrix.
    """
    disp = tuple(int(d) for d in displacements_ps)
    if not disp:
        raise ValueError("displacements_ps needs at least one displacement (e.g. 20000 ps)")
    too_close = [d for d in disp if abs(d) <= window_ps]
    if too_close:
        raise ValueError(
            f"displacements {too_close} ps overlap the true window (width {window_ps} ps): "
            "each |displacement| must exceed the window width"
        )
    want_matrix = ch_a is not None or ch_b is not None
    if want_matrix and (ch_a is None or ch_b is None or channels_a is None or channels_b is None):
        raise ValueError("the accidentals matrix needs ch_a, ch_b, channels_a and channels_b")
    ta = _as_times(t_a, "t_a")
    tb = _as_times(t_b, "t_b")
    ca = np.asarray(ch_a) if ch_a is not None else None
    cb = np.asarray(ch_b) if ch_b is not None else None
    if ca is not None and ca.shape != ta.shape:
        raise ValueError(f"ch_a has shape {ca.shape}, t_a {ta.shape}: one channel per event")
    if cb is not None and cb.shape != tb.shape:
        raise ValueError(f"ch_b has shape {cb.shape}, t_b {tb.shape}: one channel per event")
    counts = np.empty(len(disp), dtype=np.int64)
    matrix = np.zeros((4, 4), dtype=np.float64) if want_matrix else None
    times: list[I64Array] = []
    for k, d in enumerate(disp):
        pairs = match(ta, tb, window_ps=window_ps, shift_ps=shift_ps + d)
        counts[k] = len(pairs)
        times.append(ta[pairs.idx_a])
        if matrix is not None and ca is not None and cb is not None:
            assert channels_a is not None
            assert channels_b is not None
            matrix += count_matrix(ca[pairs.idx_a], cb[pairs.idx_b], channels_a, channels_b)
    n_win = len(disp)
    total = int(counts.sum())
    mean = total / n_win
    std = float(np.std(counts, ddof=1)) if n_win > 1 else math.sqrt(mean)
    return AccidentalEstimate(
        displacements_ps=disp,
        window_ps=int(window_ps),
        counts=counts,
        mean=mean,
        std=std,
        sigma_mean=math.sqrt(total) / n_win,
        matrix=None if matrix is None else matrix / n_win,
        times_ps=np.sort(np.concatenate(times)),
    )


def histogram(
    t_a: npt.ArrayLike,
    t_b: npt.ArrayLike,
    *,
    half_range_ps: int,
    bin_ps: int,
    shift_ps: int = 0,
) -> tuple[I64Array, I64Array]:
    """Histogram of ``t_b - t_a - shift_ps`` over *all* pairs in [-half_range, +half_range).

    Not one-to-one (every pair counts): this is the correlation peak on its flat accidental
    floor, used to measure the peak width (-> :func:`window_from_width`) and check the
    residual offset. Returns ``(edges_ps, counts)``: int64 edges (n_bins + 1, relative to
    ``shift_ps``) and int64 counts. ``2 * half_range_ps`` must be a multiple of ``bin_ps``.
    """
    if bin_ps <= 0 or half_range_ps <= 0:
        raise ValueError(f"bin_ps and half_range_ps must be > 0, got {bin_ps}, {half_range_ps}")
    if (2 * half_range_ps) % bin_ps:
        raise ValueError(
            f"2 * half_range_ps ({2 * half_range_ps}) must be a multiple of bin_ps ({bin_ps})"
        )
    ta = _as_times(t_a, "t_a")
    tb = _as_times(t_b, "t_b")
    _check_sorted(ta, "t_a")
    _check_sorted(tb, "t_b")
    nbins = 2 * half_range_ps // bin_ps
    counts = np.zeros(nbins, dtype=np.int64)
    _histogram_kernel(ta, tb, int(shift_ps), int(half_range_ps), int(bin_ps), counts)
    edges = -half_range_ps + bin_ps * np.arange(nbins + 1, dtype=np.int64)
    return edges, counts


def window_from_width(sigma_ps: float, *, k: float = 3.0) -> int:
    """Full coincidence window (ps) of ±``k``·σ around the peak, rounded up to whole ps.

    ``sigma_ps`` is the RMS width of the correlation peak (both stations' detector and tagger
    jitter and the residual offset wander, in quadrature). ±3σ keeps 99.73 % of a Gaussian
    peak while the accidentals grow only linearly with the width; with an SNR of ~100 the
    QBER cost of the accidentals a wider window adds is ~0.5 %·(k/3), the cost of clipping
    the peak at ±2σ would be 4.6 % of the pairs, so k = 3 sits near the knee. Detector
    jitter has exponential tails; measure σ from the histogram core, not its RMS with tails.
    """
    if not math.isfinite(sigma_ps) or sigma_ps <= 0:
        raise ValueError(f"sigma_ps must be a positive finite width in ps, got {sigma_ps}")
    if not math.isfinite(k) or k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return max(1, math.ceil(2.0 * k * sigma_ps))


def _lookup(channels: ChannelOrder) -> npt.NDArray[np.int8]:
    table = np.full(256, -1, dtype=np.int8)
    for pos, ch in enumerate((channels.h, channels.v, channels.d, channels.a)):
        table[ch] = pos
    return table


def count_matrix(
    ch_a_pairs: npt.ArrayLike,
    ch_b_pairs: npt.ArrayLike,
    channels_a: ChannelOrder,
    channels_b: ChannelOrder,
) -> I64Array:
    """4x4 coincidence counts: rows A's (H, V, D, A), columns B's (H, V, D, A).

    ``ch_a_pairs[k]``, ``ch_b_pairs[k]`` are the two channels of coincidence k (i.e.
    ``ch_a[pairs.idx_a]``, ``ch_b[pairs.idx_b]``). Pairs on a channel that is not an analyzer
    output (a sync or PPS input left in the stream) are not counted; better remove such
    events before matching, since they can take a partner from a photon.
    """
    ca = np.asarray(ch_a_pairs)
    cb = np.asarray(ch_b_pairs)
    if ca.shape != cb.shape or ca.ndim != 1:
        raise ValueError(f"channel arrays must be 1-D of equal length, got {ca.shape}, {cb.shape}")
    if ca.size and (
        int(ca.min()) < 0 or int(ca.max()) > 255 or int(cb.min()) < 0 or int(cb.max()) > 255
    ):
        raise ValueError("channels must be in 0..255 (uint8 tagger channel numbers)")
    ia = _lookup(channels_a)[ca.astype(np.intp)].astype(np.intp)
    ib = _lookup(channels_b)[cb.astype(np.intp)].astype(np.intp)
    ok = (ia >= 0) & (ib >= 0)
    flat = np.bincount(ia[ok] * 4 + ib[ok], minlength=16)
    return flat.astype(np.int64).reshape(4, 4)
