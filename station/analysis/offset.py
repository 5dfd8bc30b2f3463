"""Two-station clock offset and drift: unfolded search, least-squares refinement, tracking.

Convention: the partner of an A event at ``t_a`` (int64 ps) appears in B at
``t_b = t_a + offset(t_a)`` with ``offset(t) = offset_ps + freq * (t - t_ref_ps)``.

Why an *unfolded* search. The anchors (qcrypto ``pfind``, S-Fifteen ``fpfind``, Ho et al.
arXiv:0901.3203) fold both streams modulo an FFT buffer and cross-correlate. Folding piles
all n_A * n_B accidental differences onto N bins, so the peak needs C >> sqrt(n_A n_B / N)
coincidences (~1e4 for a pass); a Micius pass yields a few hundred. Here only the pair
differences inside the prior's range are formed (a two-pointer walk over both sorted
streams, as qcrypto's costream does), and for every frequency trial they are histogrammed in
fine bins: the background per bin is then S_A * S_B * T * bin (a few counts), and a few
hundred pairs stand out by > 10 sigma.

Frequency trials are spaced by ``bin / span`` so the drift left over by the nearest trial
smears the peak by at most half a bin across the data. When pairs x trials exceed the work
budget the search is two-level (coarse bins everywhere, fine bins around the best coarse
cells), as pfind combines a coarse and a fine correlation. Significance and a look-elsewhere
corrected p-value (tail probability of the best cell x number of cells) decide whether a
peak is real; :class:`NoCorrelation` is raised otherwise.

After the search, :func:`refine` fits offset and frequency by EM-weighted least squares on
the pairs in a window (Gaussian peak on a uniform accidental floor), and
:func:`track_offset` follows the residual random walk of the two clocks through the pass
with a Kalman filter + Rauch-Tung-Striebel smoother (innovation gating rejects accidentals,
the same role as costream's tracking window in qcrypto).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm, poisson

from station.analysis.errors import NoCorrelation

#: Default upper bound on pair differences held in memory at once (3 float64 arrays each).
MAX_PAIRS = 20_000_000
#: Budget of (pair difference x frequency trial) histogram increments for one search.
TRIAL_BUDGET = 100_000_000
#: Fewer bins than this makes the background estimate meaningless.
MIN_BINS = 32
#: Coarse cells re-searched with fine bins in the two-level search.
N_CANDIDATES = 16


@dataclass(frozen=True)
class OffsetEstimate:
    """Result of an offset/drift search (times in ps, ``freq`` dimensionless).

    ``significance`` = (peak - background mean) / background sigma in the best trial.
    ``p_global`` is the probability that background alone gives a peak that high anywhere
    among ``trials`` frequency trials x all bins (Poisson tail x number of cells).
    ``width_ps`` is the Gaussian sigma of the coincidence peak, ``n_peak`` the pairs within
    +-2 sigma, ``background_per_bin`` the accidental count per ``bin_ps`` bin of the search.
    ``offset_err_ps`` / ``freq_err`` are 1-sigma statistical errors after :func:`refine`.
    """

    offset_ps: float
    freq: float
    t_ref_ps: int
    significance: float
    p_global: float
    width_ps: float
    n_peak: int
    background_per_bin: float
    bin_ps: float
    method: str
    trials: int
    offset_err_ps: float = math.nan
    freq_err: float = math.nan

    def at(self, t_ps: NDArray[np.int64] | int) -> NDArray[np.float64]:
        """Predicted offset (ps) at A times ``t_ps``."""
        dt = (np.asarray(t_ps, dtype=np.int64) - self.t_ref_ps).astype(np.float64)
        return np.asarray(self.offset_ps + self.freq * dt, dtype=np.float64)

    def rereferenced(self, t_ref_ps: int) -> OffsetEstimate:
        """The same line expressed at another reference time (errors propagated, the
        offset-frequency covariance neglected: small near the fit's weighted mean time)."""
        dt = float(t_ref_ps - self.t_ref_ps)
        err = math.hypot(self.offset_err_ps, self.freq_err * dt)
        return replace(
            self,
            offset_ps=self.offset_ps + self.freq * dt,
            t_ref_ps=int(t_ref_ps),
            offset_err_ps=err,
        )


@dataclass(frozen=True)
class PairDiffs:
    """Candidate pairs around a model: ``d`` = t_b - t_a - model(t_a) (ps), ``tau`` =
    t_a - t_ref (ps), ``ia`` = index into t_a. Sorted by A time."""

    d: NDArray[np.float64]
    tau: NDArray[np.float64]
    ia: NDArray[np.int64]


def pair_differences(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    *,
    center_ps: float,
    half_range_ps: float,
    freq: float = 0.0,
    t_ref_ps: int = 0,
    max_pairs: int = MAX_PAIRS,
) -> PairDiffs:
    """All (A, B) pairs with |t_b - t_a - center - freq*(t_a - t_ref)| <= half_range.

    A two-pointer walk gives each A event's window in B (O(n_A + n_B)); a second compiled
    pass gathers the residuals. Differences are formed in int64 and only the small residual
    is converted to float64, so absolute times never lose precision.
    """
    if t_a.size == 0 or t_b.size == 0:
        empty = np.zeros(0)
        return PairDiffs(empty, empty.copy(), np.zeros(0, dtype=np.int64))
    lo, hi = _windows(
        t_a, t_b, int(t_ref_ps), float(center_ps), float(freq), math.ceil(half_range_ps)
    )
    total = int((hi - lo).sum())
    if total > max_pairs:
        raise ValueError(
            f"{total} pair differences within +-{half_range_ps:.3g} ps exceed the memory bound "
            f"{max_pairs}: narrow the prior or use blind_search (folded FFT) first"
        )
    d, tau, ia = _gather(
        t_a,
        t_b,
        int(t_ref_ps),
        float(center_ps),
        float(freq),
        lo,
        hi,
        float(half_range_ps),
        total,
    )
    return PairDiffs(d, tau, ia)


def _around(
    t_a: NDArray[np.int64], t_b: NDArray[np.int64], est: OffsetEstimate, window_ps: float
) -> PairDiffs:
    """Pair differences within ±``window_ps`` of the estimate's offset line (refine, track)."""
    return pair_differences(
        t_a,
        t_b,
        center_ps=est.offset_ps,
        half_range_ps=window_ps,
        freq=est.freq,
        t_ref_ps=est.t_ref_ps,
    )


@numba.njit(cache=True)
def _windows(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    t_ref: int,
    center: float,
    freq: float,
    half: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - compiled
    """Indices [lo, hi) of t_b within [q - half, q + half], q = t_a + rint(model(t_a)).

    A two-pointer merge, O(n_a + n_b), like costream's walk: the same result as two
    ``np.searchsorted`` calls without their temporaries. Pointers step back too, so a
    non-monotonic q (|freq| ~ 1 or rounding) is still handled exactly.
    """
    n = t_a.size
    nb = t_b.size
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    if n == 0:
        return lo, hi
    q0 = t_a[0] + np.int64(np.rint(center + freq * float(t_a[0] - t_ref)))
    i = np.searchsorted(t_b, q0 - half)  # start the walk at the first window, not at t_b[0]
    j = i
    for k in range(n):
        q = t_a[k] + np.int64(np.rint(center + freq * float(t_a[k] - t_ref)))
        x = q - half
        while i < nb and t_b[i] < x:
            i += 1
        while i > 0 and t_b[i - 1] >= x:
            i -= 1
        y = q + half
        if j < i:
            j = i
        while j < nb and t_b[j] <= y:
            j += 1
        while j > i and t_b[j - 1] > y:
            j -= 1
        lo[k] = i
        hi[k] = j
    return lo, hi


@numba.njit(cache=True)
def _gather(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    t_ref: int,
    center: float,
    freq: float,
    lo: NDArray[np.int64],
    hi: NDArray[np.int64],
    half: float,
    total: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:  # pragma: no cover
    """Residuals of the candidate pairs in each A event's window (int64 difference first,
    then only the small residual in float64)."""
    d = np.empty(total, dtype=np.float64)
    tau = np.empty(total, dtype=np.float64)
    ia = np.empty(total, dtype=np.int64)
    m = 0
    for i in range(t_a.size):
        if hi[i] == lo[i]:
            continue
        ti = t_a[i] - t_ref
        model = center + freq * float(ti)
        shift = np.int64(np.rint(model))
        frac = model - float(shift)
        for j in range(lo[i], hi[i]):
            x = float(t_b[j] - t_a[i] - shift) - frac
            if abs(x) <= half:
                d[m] = x
                tau[m] = float(ti)
                ia[m] = i
                m += 1
    return d[:m], tau[:m], ia[:m]


@numba.njit(cache=True)
def _scan_trials(
    d: NDArray[np.float64],
    tau: NDArray[np.float64],
    dfreqs: NDArray[np.float64],
    lo: float,
    w: float,
    nbins: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - compiled
    """For each frequency trial: histogram ``d - df*tau`` on [lo, lo + nbins*w) and return
    the highest sum of two adjacent bins and the index of its first bin (a peak split by a
    bin edge or smeared by the residual drift is still counted whole)."""
    nt = dfreqs.size
    peak = np.zeros(nt, dtype=np.int64)
    arg = np.zeros(nt, dtype=np.int64)
    hist = np.zeros(nbins, dtype=np.int32)
    inv_w = 1.0 / w
    for k in range(nt):
        hist[:] = 0
        f = dfreqs[k]
        for m in range(d.size):
            x = (d[m] - f * tau[m] - lo) * inv_w
            if x >= 0.0:
                b = int(x)
                if b < nbins:
                    hist[b] += 1
        best = -1
        ib = 0
        for b in range(nbins - 1):
            v = hist[b] + hist[b + 1]
            if v > best:
                best = v
                ib = b
        peak[k] = best
        arg[k] = ib
    return peak, arg


def peak_statistics(
    hist: NDArray[np.int64], ib: int, cells: int, exclude: int = 2
) -> tuple[float, float, float]:
    """(significance, p_global, background mean) of bin ``ib`` in ``hist``.

    Background mean/sigma come from all bins except +-``exclude`` around the peak. The
    local p-value is the Poisson tail P(X >= peak | mean) (or the Gaussian tail with the
    measured sigma when that is larger: overdispersed background); the global one corrects for
    ``cells`` independent looks: p_g = 1 - (1 - p)^cells (conservative: trials correlate).
    """
    mask = np.ones(hist.size, dtype=bool)
    mask[max(ib - exclude, 0) : ib + exclude + 1] = False
    bg = hist[mask].astype(np.float64)
    mu = float(bg.mean()) if bg.size else 0.0
    sd = float(bg.std()) if bg.size > 1 else 0.0
    peak = float(hist[ib])
    sd_eff = sd if sd > 0 else math.sqrt(max(mu, 1.0))
    significance = (peak - mu) / sd_eff
    # Poisson tail; if the background scatters more than Poisson (a folded correlation's
    # bins are not independent counts), the Gaussian tail with the measured sigma is
    # larger: take the more conservative of the two.
    p_local = float(poisson.sf(peak - 1.0, max(mu, 1e-12)))
    if sd > 0:
        p_local = max(p_local, float(norm.sf(significance)))
    p_global = -math.expm1(cells * math.log1p(-min(p_local, 1.0 - 1e-16)))
    return significance, min(max(p_global, 0.0), 1.0), mu


def _freq_grid(freq_half_range: float, w: float, span: float) -> NDArray[np.float64]:
    """Frequency trials spaced by w/span (drift left by the nearest trial <= w/4 at the
    ends of the span), covering +-freq_half_range."""
    if freq_half_range <= 0 or span <= 0:
        return np.zeros(1)
    step = w / span
    n_half = math.ceil(freq_half_range / step)
    return np.arange(-n_half, n_half + 1, dtype=np.float64) * step


def _histogram(x: NDArray[np.float64], lo: float, w: float, nbins: int) -> NDArray[np.int64]:
    """Counts of x in nbins bins of width w from lo (values outside dropped)."""
    inside = x[(x >= lo) & (x < lo + nbins * w)]
    idx = np.minimum(np.floor((inside - lo) / w).astype(np.int64), nbins - 1)
    return np.bincount(idx, minlength=nbins)[:nbins]


def _auto_bin(
    half_range_ps: float,
    freq_half_range: float,
    span_ps: float,
    n_pairs: int,
    min_bin_ps: float,
    max_bins: int,
    budget: float,
) -> float:
    """Finest bin that keeps bins x trials and increments within budget."""
    w = max(min_bin_ps, 2.0 * half_range_ps / max_bins)
    if freq_half_range > 0 and n_pairs > 0:
        w = max(w, 2.0 * freq_half_range * span_ps * n_pairs / budget)
    return w


def search_offset(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    *,
    center_ps: float = 0.0,
    half_range_ps: float,
    freq_center: float = 0.0,
    freq_half_range: float = 0.0,
    t_ref_ps: int | None = None,
    min_significance: float = 5.0,
    max_p_global: float = 1e-6,
    bin_ps: float | None = None,
    min_bin_ps: float = 250.0,
    max_bins: int = 1 << 20,
    work_budget: float = TRIAL_BUDGET,
    refine_result: bool = True,
) -> OffsetEstimate:
    """Unfolded offset search over |offset - center| <= half_range and
    |freq - freq_center| <= freq_half_range (the residual prior; ps, dimensionless).

    ``t_ref_ps`` defaults to the middle of A's span (offset and frequency then decorrelate).
    ``bin_ps`` fixes one bin width; by default the coarse bin is the finest that keeps
    (pairs x frequency trials) within ``work_budget`` and the fine bin is ``min_bin_ps``. The
    result is :func:`refine`-d (least squares on the peak's pairs) unless
    ``refine_result`` is False. Raises :class:`NoCorrelation` if the best peak has
    p_global > ``max_p_global`` or significance < ``min_significance``.
    """
    if t_a.size == 0 or t_b.size == 0:
        raise NoCorrelation("offset search needs events in both streams; one stream is empty.")
    t_ref = int((int(t_a[0]) + int(t_a[-1])) // 2) if t_ref_ps is None else int(t_ref_ps)
    span = float(t_a[-1] - t_a[0])
    max_tau = float(max(abs(int(t_a[0]) - t_ref), abs(int(t_a[-1]) - t_ref)))
    gather = half_range_ps + freq_half_range * max_tau
    rate_b = t_b.size / max(float(t_b[-1] - t_b[0]), 1.0)
    expected = t_a.size * rate_b * 2.0 * gather
    if expected > MAX_PAIRS:
        raise ValueError(
            f"prior +-{half_range_ps:.3g} ps, +-{freq_half_range:.3g} would form ~{expected:.3g}"
            f" pair differences (> {MAX_PAIRS}); narrow it or use blind_search"
        )
    pd = pair_differences(
        t_a, t_b, center_ps=center_ps, half_range_ps=gather, freq=freq_center, t_ref_ps=t_ref
    )
    w_fine = bin_ps if bin_ps is not None else min_bin_ps
    w = (
        bin_ps
        if bin_ps is not None
        else _auto_bin(
            half_range_ps, freq_half_range, span, pd.d.size, min_bin_ps, max_bins, work_budget
        )
    )
    nbins = max(math.ceil(2.0 * half_range_ps / w), MIN_BINS)
    lo = -0.5 * nbins * w
    dfreqs = _freq_grid(freq_half_range, w, span)
    peaks, args = _scan_trials(pd.d, pd.tau, dfreqs, lo, w, nbins)
    n_fine_bins = math.ceil(2.0 * half_range_ps / w_fine)
    cells_fine = n_fine_bins * _freq_grid(freq_half_range, w_fine, span).size
    searched = (
        f"offset {center_ps:.6g} +- {half_range_ps:.3g} ps, freq {freq_center:.3g} +- "
        f"{freq_half_range:.3g} ({cells_fine:.3g} cells of {w_fine:.3g} ps)"
    )
    if w <= 1.5 * w_fine:
        # One level: the budget allows the fine bin everywhere.
        k = int(np.argmax(peaks))
        ib = int(args[k])
        df = float(dfreqs[k])
        hist = _histogram(pd.d - df * pd.tau, lo, w, nbins)
        pair_sum = hist[:-1] + hist[1:]
        sig, p_glob, mu2 = peak_statistics(pair_sum, ib, (nbins - 1) * dfreqs.size, exclude=3)
        mu = 0.5 * mu2
        w_used, lo_used, trials = w, lo, int(dfreqs.size)
    else:
        # Two levels (coarse-to-fine, as pfind's coarse/fine pair): the best coarse cells
        # of each frequency trial are candidates; each is re-searched with fine bins and
        # fine frequency steps on its own pairs. The accidental floor is uniform, so the
        # fine background is the pair density x bin; the look-elsewhere factor counts
        # every fine cell of the whole prior.
        mu = pd.d.size / (2.0 * gather) * w_fine
        best: tuple[int, float, float, float] | None = None  # peak, df, lo, ib
        for k in np.argsort(peaks)[::-1][:N_CANDIDATES]:
            c = lo + (int(args[k]) + 1) * w
            x = pd.d - float(dfreqs[k]) * pd.tau
            sel = np.abs(x - c) <= 2.0 * w
            lo_f = c - 1.5 * w
            nb_f = math.ceil(3.0 * w / w_fine)
            df_f = float(dfreqs[k]) + _freq_grid(1.5 * w / span if span > 0 else 0.0, w_fine, span)
            if freq_half_range == 0:
                df_f = np.zeros(1)
            pk, ar = _scan_trials(pd.d[sel], pd.tau[sel], df_f, lo_f, w_fine, nb_f)
            j = int(np.argmax(pk))
            if best is None or pk[j] > best[0]:
                best = (int(pk[j]), float(df_f[j]), lo_f, float(ar[j]))
        assert best is not None
        peak_f, df, lo_used, ib_f = best
        ib = int(ib_f)
        w_used, trials = w_fine, int(cells_fine // n_fine_bins)
        nb_used = math.ceil(3.0 * w / w_fine)
        hist = _histogram(pd.d - df * pd.tau, lo_used, w_fine, nb_used)
        sd = math.sqrt(max(2.0 * mu, 1e-12))
        sig = (peak_f - 2.0 * mu) / sd
        p_loc = float(poisson.sf(peak_f - 1.0, max(2.0 * mu, 1e-12)))
        p_glob = min(max(-math.expm1(cells_fine * math.log1p(-min(p_loc, 1 - 1e-16))), 0.0), 1.0)
        nbins = nb_used
    if p_glob > max_p_global or sig < min_significance:
        raise NoCorrelation(
            f"No significant coincidence peak in {searched}: best significance {sig:.2f} "
            f"sigma, global p {p_glob:.2g}."
        )
    # Sub-bin position: background-subtracted centroid of the two peak bins +- 1.
    nb = np.arange(max(ib - 1, 0), min(ib + 3, nbins))
    wts = np.clip(hist[nb] - mu, 0.0, None)
    centre_bin = float(np.sum(wts * nb) / np.sum(wts)) if np.sum(wts) > 0 else float(ib) + 0.5
    est = OffsetEstimate(
        offset_ps=center_ps + lo_used + (centre_bin + 0.5) * w_used,
        freq=freq_center + df,
        t_ref_ps=t_ref,
        significance=sig,
        p_global=p_glob,
        width_ps=w_used / math.sqrt(12.0),
        n_peak=int(hist[nb].sum()),
        background_per_bin=mu,
        bin_ps=w_used,
        method="unfolded",
        trials=trials,
    )
    if not refine_result:
        return est
    return refine(t_a, t_b, est, window_ps=max(3.0 * w_used, 2000.0))


def refine(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    est: OffsetEstimate,
    *,
    window_ps: float,
    fit_freq: bool = True,
    iterations: int = 60,
) -> OffsetEstimate:
    """Least-squares offset (+ frequency) on the pairs within +-``window_ps`` of ``est``.

    The candidates are a Gaussian peak (true pairs, linear mean a + b*tau, sigma s) on a
    uniform floor (accidentals). Expectation-maximisation (Dempster, Laird & Rubin 1977)
    weights each candidate by its probability of being a true pair and solves a weighted
    least-squares line; it needs no hand-set gate and stays unbiased under heavy background.
    Returns ``est`` with offset, freq, width, n_peak and 1-sigma errors updated.
    """
    pd = _around(t_a, t_b, est, window_ps)
    if pd.d.size < 3:
        raise NoCorrelation(
            f"Refinement found {pd.d.size} pairs within +-{window_ps:.3g} ps of offset "
            f"{est.offset_ps:.6g} ps: the estimate does not describe these streams."
        )
    d, tau = pd.d, pd.tau
    # Start at the densest spot of a coarse histogram of the residuals.
    nb = 64
    hist, edges = np.histogram(d, bins=nb, range=(-window_ps, window_ps))
    i0 = int(np.argmax(hist))
    a, b = 0.5 * float(edges[i0] + edges[i0 + 1]), 0.0
    if math.isfinite(est.offset_err_ps) and est.offset_err_ps < window_ps / 4.0:
        a = 0.0  # already refined: start on the line itself
    s = (
        max(window_ps / nb, min(est.width_ps, window_ps / 4.0))
        if est.width_ps > 0
        else (window_ps / 8.0)
    )
    floor = 1.0 / (2.0 * window_ps)  # uniform accidental density over the window
    pi = 0.5
    gamma = np.ones(d.size)
    for _ in range(iterations):
        r = d - (a + b * tau)
        g = pi * np.exp(-0.5 * (r / s) ** 2) / (s * math.sqrt(2.0 * math.pi))
        gamma = g / (g + (1.0 - pi) * floor)
        sw = float(gamma.sum())
        if sw < 2.0:
            break
        if fit_freq:
            tw = float(np.dot(gamma, tau)) / sw
            dtw = tau - tw
            sxx = float(np.dot(gamma, dtw * dtw))
            b_new = float(np.dot(gamma, dtw * d)) / sxx if sxx > 0 else b
            a_new = float(np.dot(gamma, d)) / sw - b_new * tw
        else:
            b_new = b
            a_new = float(np.dot(gamma, d - b * tau)) / sw
        r = d - (a_new + b_new * tau)
        s_new = max(math.sqrt(float(np.dot(gamma, r * r)) / sw), 1.0)
        pi = min(max(sw / d.size, 1e-9), 1.0 - 1e-9)
        converged = abs(a_new - a) < 1e-3 * s and abs(s_new - s) < 1e-3 * s
        a, b, s = a_new, b_new, s_new
        if converged:
            break
    sw = float(gamma.sum())
    tw = float(np.dot(gamma, tau)) / max(sw, 1e-300)
    sxx = float(np.dot(gamma, (tau - tw) ** 2))
    var_a = 1.0 / max(sw, 1e-300) + (tw * tw / sxx if sxx > 0 else 0.0)
    var_b = 1.0 / sxx if sxx > 0 else 0.0
    r = d - (a + b * tau)
    n_peak = int(np.count_nonzero(np.abs(r) < 2.0 * s))
    if n_peak < 3 or sw < 3.0 or s > 0.5 * window_ps:
        raise NoCorrelation(
            f"Refinement found no coincidence peak within +-{window_ps:.3g} ps of offset "
            f"{est.offset_ps:.6g} ps ({n_peak} pairs within 2 sigma, sigma {s:.3g} ps)."
        )
    return replace(
        est,
        offset_ps=est.offset_ps + a,
        freq=est.freq + b,
        width_ps=s,
        n_peak=n_peak,
        offset_err_ps=s * math.sqrt(var_a),
        freq_err=s * math.sqrt(var_b) if fit_freq else est.freq_err,
    )


@dataclass(frozen=True)
class OffsetTrack:
    """Offset followed through the pass: ``est``'s line plus a smoothed residual walk.

    ``knot_t_ps`` are the A times of the accepted coincidences, ``knot_resid_ps`` the RTS
    smoothed residual offset there (ps, relative to the line) and ``knot_sigma_ps`` its 1-sigma
    uncertainty. Segments of ``pairs_per_segment`` accepted pairs summarise the fit for the
    report (offset-vs-time plot): mean time, smoothed offset, residual rms and pair count.
    """

    base: OffsetEstimate
    knot_t_ps: NDArray[np.int64]
    knot_resid_ps: NDArray[np.float64]
    knot_sigma_ps: NDArray[np.float64]
    seg_t_ps: NDArray[np.int64]
    seg_offset_ps: NDArray[np.float64]
    seg_rms_ps: NDArray[np.float64]
    seg_n_pairs: NDArray[np.int64]
    n_accepted: int
    n_rejected: int

    def at(self, t_ps: NDArray[np.int64]) -> NDArray[np.float64]:
        """Predicted offset (ps) at A times ``t_ps`` (held constant beyond the end knots)."""
        t = np.asarray(t_ps, dtype=np.int64)
        line = self.base.at(t)
        x = (t - self.base.t_ref_ps).astype(np.float64)
        xk = (self.knot_t_ps - self.base.t_ref_ps).astype(np.float64)
        return np.asarray(line + np.interp(x, xk, self.knot_resid_ps), dtype=np.float64)


@numba.njit(cache=True)
def _kalman_rts(
    tau: NDArray[np.float64],
    d: NDArray[np.float64],
    q_per_ps: float,
    r_meas: float,
    p0: float,
    gate: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:  # pragma: no cover
    """Random-walk Kalman filter over time-sorted residuals ``d`` with innovation gating,
    then an RTS smoother. Returns smoothed state, its variance and the accepted mask."""
    n = d.size
    xp = np.zeros(n)
    pp = np.zeros(n)
    xf = np.zeros(n)
    pf = np.zeros(n)
    acc = np.zeros(n, dtype=np.bool_)
    x = 0.0
    p = p0
    t_prev = tau[0] if n > 0 else 0.0
    for k in range(n):
        p = p + q_per_ps * (tau[k] - t_prev)
        t_prev = tau[k]
        xp[k] = x
        pp[k] = p
        nu = d[k] - x
        s = p + r_meas
        if nu * nu <= gate * gate * s:
            g = p / s
            x = x + g * nu
            p = (1.0 - g) * p
            acc[k] = True
        xf[k] = x
        pf[k] = p
    xs = xf.copy()
    ps = pf.copy()
    for k in range(n - 2, -1, -1):
        c = pf[k] / pp[k + 1]
        xs[k] = xf[k] + c * (xs[k + 1] - xp[k + 1])
        ps[k] = pf[k] + c * c * (ps[k + 1] - pp[k + 1])
    return xs, ps, acc


def track_offset(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    est: OffsetEstimate,
    *,
    window_ps: float,
    random_walk_ps_per_sqrt_s: float = 30.0,
    gate_sigma: float = 3.0,
    pairs_per_segment: int = 30,
) -> OffsetTrack:
    """Follow the offset through the pass around ``est`` (pairs within +-``window_ps``).

    Model: residual x(t) = offset(t) - est line is a random walk with diffusion
    ``random_walk_ps_per_sqrt_s`` (ps/sqrt(s); ~sqrt(2) x 20 for two PPS-disciplined
    clocks); each coincidence measures x with the peak's Gaussian sigma (``est.width_ps``).
    Candidates whose innovation exceeds ``gate_sigma`` are treated as accidentals.
    """
    pd = _around(t_a, t_b, est, window_ps)
    if pd.d.size < 3:
        raise NoCorrelation(
            f"Tracking found {pd.d.size} pairs within +-{window_ps:.3g} ps of the offset line."
        )
    width = est.width_ps if math.isfinite(est.width_ps) and est.width_ps > 0 else window_ps / 3
    q = random_walk_ps_per_sqrt_s**2 * 1e-12  # ps^2 per ps of elapsed time
    xs, ps, acc = _kalman_rts(pd.tau, pd.d, q, width**2, (2.0 * width) ** 2, gate_sigma)
    n_acc = int(np.count_nonzero(acc))
    if n_acc < 3:
        raise NoCorrelation("Tracking accepted fewer than 3 coincidences: no peak to follow.")
    t_acc = t_a[pd.ia[acc]]
    x_acc, p_acc, d_acc = xs[acc], ps[acc], pd.d[acc]
    n_seg = max(n_acc // pairs_per_segment, 1)
    groups = np.array_split(np.arange(n_acc), n_seg)
    seg: dict[str, list[Any]] = {"t": [], "off": [], "rms": [], "n": []}
    for g in groups:
        seg["t"].append(int(np.mean(t_acc[g] - t_acc[0])) + int(t_acc[0]))
        seg["off"].append(float(np.mean(x_acc[g])))
        seg["rms"].append(float(np.sqrt(np.mean((d_acc[g] - x_acc[g]) ** 2))))
        seg["n"].append(int(g.size))
    seg_t = np.asarray(seg["t"], dtype=np.int64)
    return OffsetTrack(
        base=est,
        knot_t_ps=t_acc,
        knot_resid_ps=np.asarray(x_acc, dtype=np.float64),
        knot_sigma_ps=np.sqrt(np.asarray(p_acc, dtype=np.float64)),
        seg_t_ps=seg_t,
        seg_offset_ps=est.at(seg_t) + np.asarray(seg["off"]),
        seg_rms_ps=np.asarray(seg["rms"], dtype=np.float64),
        seg_n_pairs=np.asarray(seg["n"], dtype=np.int64),
        n_accepted=n_acc,
        n_rejected=int(pd.d.size - n_acc),
    )


def blind_search(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    *,
    max_offset_ps: float = 200e9,
    max_freq: float = 100e-6,
    **kwargs: Any,
) -> OffsetEstimate:
    """Blind search (lab data: no orbit, no PPS) over +-``max_offset_ps``, +-``max_freq``.

    A folded FFT cross-correlation with frequency trials finds the coarse offset (see
    :mod:`station.analysis.offset_fft`), then unfolded searches and refinements zoom in.
    Keyword arguments go to :func:`station.analysis.offset_fft.blind_search`.
    """
    from station.analysis import offset_fft  # local: offset_fft imports this module

    return offset_fft.blind_search(
        t_a, t_b, max_offset_ps=max_offset_ps, max_freq=max_freq, **kwargs
    )
