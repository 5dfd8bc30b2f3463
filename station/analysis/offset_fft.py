"""Blind offset search (lab data: no orbit, no PPS): folded FFT with frequency trials.

Why folded here. Blind, the offset may be anywhere in +-200 ms and the frequency anywhere in
+-100 ppm (free-running quartz): forming every pair difference in +-200 ms is ~1e11 pairs
per second of lab data, so the histogram of differences is computed as a cross-correlation
of folded histograms with an FFT (qcrypto ``pfind``, S-Fifteen ``fpfind``, Ho et al.
arXiv:0901.3203). With 50 kcps of pairs the condition C >> sqrt(n_A n_B / N) holds easily.

Unlike fpfind (one long correlation window, then resolution doubling until the smeared peak
stands out, then an early/late pair of windows for the frequency), this module correlates a
*short* A segment of length T against the B events that can be its partners (T + 2 x range),
and tries frequencies spaced by ``bin / T``: the drift inside the segment then stays below
a bin, so the peak is never smeared, and significance grows as sqrt(T / bin). The B FFT is
computed once; each frequency trial costs one histogram of the few A events + one FFT pair.

The coarse answer (offset to ~1 bin = 1 us, frequency to bin/T) is then handed to the
unfolded search of :mod:`station.analysis.offset` on the same segment, and to least-squares
refinements over growing spans up to the whole data set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from station.analysis.errors import NoCorrelation
from station.analysis.offset import OffsetEstimate, peak_statistics, refine, search_offset

#: Largest FFT buffer (bins); 2^23 float64 takes ~0.6 s per transform on the reference VM.
MAX_FFT_BINS = 1 << 23
#: Refinement passes over growing spans (each at least doubles the span).
MAX_GROWTH_STEPS = 40


@dataclass(frozen=True)
class CoarseResult:
    """FFT stage result and the A segment [seg_lo_ps, seg_hi_ps) it used."""

    est: OffsetEstimate
    seg_lo_ps: int
    seg_hi_ps: int
    freq_step: float


def _fft_once(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    *,
    center_ps: float,
    max_offset_ps: float,
    freq_center: float,
    max_freq: float,
    bin_ps: float,
    seg_lo: int,
    seg_hi: int,
) -> tuple[OffsetEstimate, float]:
    """One FFT search on A events in [seg_lo, seg_hi); returns the estimate (unchecked)."""
    t_ref = (seg_lo + seg_hi) // 2
    seg = float(seg_hi - seg_lo)
    a = t_a[np.searchsorted(t_a, seg_lo) : np.searchsorted(t_a, seg_hi)]
    drift = (abs(freq_center) + max_freq) * 0.5 * seg
    margin = max_offset_ps + drift + 2.0 * bin_ps
    b_lo = int(seg_lo + center_ps - margin)
    b_hi = int(seg_hi + center_ps + margin)
    b = t_b[np.searchsorted(t_b, b_lo) : np.searchsorted(t_b, b_hi)]
    wrap_needed = 2.0 * max_offset_ps + seg + drift + 4.0 * bin_ps
    n = 1 << max(math.ceil(math.log2(wrap_needed / bin_ps)), 4)
    if n > MAX_FFT_BINS:
        raise ValueError(
            f"blind range +-{max_offset_ps:.3g} ps at {bin_ps:.3g} ps bins needs {n} FFT bins "
            f"(> {MAX_FFT_BINS}); use a coarser bin_ps or a shorter segment"
        )
    tau_b = (b - t_ref).astype(np.float64)
    hb = np.bincount(np.floor(tau_b / bin_ps).astype(np.int64) % n, minlength=n)
    fb = np.fft.rfft(hb.astype(np.float64))
    tau_a = (a - t_ref).astype(np.float64)
    # Allowed residual lags k*bin with |k*bin| <= max_offset + bin (both signs, mod n).
    k_max = math.ceil(max_offset_ps / bin_ps) + 1
    lags = np.arange(-k_max, k_max + 1)
    step = bin_ps / seg
    n_half = math.ceil(max_freq / step)
    dfreqs = np.arange(-n_half, n_half + 1, dtype=np.float64) * step
    best: tuple[int, int, NDArray[np.int64]] | None = None
    for i, df in enumerate(dfreqs):
        pos = tau_a + center_ps + (freq_center + df) * tau_a
        ha = np.bincount(np.floor(pos / bin_ps).astype(np.int64) % n, minlength=n)
        corr = np.fft.irfft(np.conj(np.fft.rfft(ha.astype(np.float64))) * fb, n)
        # Sum of two adjacent lags: a peak split across a bin edge is counted whole.
        c1 = np.rint(corr).astype(np.int64)
        c = (c1 + np.roll(c1, -1))[lags % n]
        ib = int(np.argmax(c))
        if best is None or c[ib] > best[2][best[1]]:
            best = (i, ib, c)
    assert best is not None
    i, ib, c = best
    sig, p_glob, mu = peak_statistics(c, ib, c.size * dfreqs.size)
    nb = np.arange(max(ib - 1, 0), min(ib + 2, c.size))
    wts = np.clip(c[nb] - mu, 0.0, None)
    centre = float(np.sum(wts * lags[nb]) / np.sum(wts)) if np.sum(wts) > 0 else float(lags[ib])
    centre += 0.5  # c[k] covers lags k and k+1
    est = OffsetEstimate(
        # A's bin floor and B's bin floor cancel on average: lag k <-> residual k*bin.
        offset_ps=center_ps + centre * bin_ps,
        freq=freq_center + float(dfreqs[i]),
        t_ref_ps=int(t_ref),
        significance=sig,
        p_global=p_glob,
        width_ps=bin_ps / math.sqrt(12.0),
        n_peak=int(c[nb].sum()),
        background_per_bin=mu,
        bin_ps=bin_ps,
        method="fft",
        trials=int(dfreqs.size),
    )
    return est, step


def fft_search(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    *,
    max_offset_ps: float = 200e9,
    max_freq: float = 100e-6,
    center_ps: float = 0.0,
    freq_center: float = 0.0,
    bin_ps: float = 1e6,
    segment_ps: float = 50e9,
    max_p_global: float = 1e-6,
    min_significance: float = 5.0,
    max_doublings: int = 1,
) -> CoarseResult:
    """Coarse folded-FFT search on an A segment of ``segment_ps`` in the middle of the data.

    If the peak is not significant the segment is made 4x longer (4x more frequency trials,
    2x significance) up to ``max_doublings`` times or the data span. (The 2-lag sum lets a
    trial up to ~1 step away still show the peak: callers should zoom over +-1.5 steps.) Raises
    :class:`NoCorrelation` when nothing significant is found.
    """
    if t_a.size == 0 or t_b.size == 0:
        raise NoCorrelation("blind search needs events in both streams; one stream is empty.")
    lo = max(int(t_a[0]), int(t_b[0] - center_ps))
    hi = min(int(t_a[-1]), int(t_b[-1] - center_ps))
    if hi <= lo:
        lo, hi = int(t_a[0]), int(t_a[-1])
    seg = float(segment_ps)
    est: OffsetEstimate | None = None
    for _ in range(max_doublings + 1):
        seg = min(seg, float(hi - lo))
        mid = (lo + hi) // 2
        s_lo = int(mid - seg // 2)
        s_hi = int(s_lo + seg)
        est, step = _fft_once(
            t_a,
            t_b,
            center_ps=center_ps,
            max_offset_ps=max_offset_ps,
            freq_center=freq_center,
            max_freq=max_freq,
            bin_ps=bin_ps,
            seg_lo=s_lo,
            seg_hi=s_hi,
        )
        if est.p_global <= max_p_global and est.significance >= min_significance:
            return CoarseResult(est, s_lo, s_hi, step)
        if seg >= hi - lo:
            break
        seg *= 4.0
    assert est is not None
    raise NoCorrelation(
        f"No significant coincidence peak in the blind FFT search (offset {center_ps:.6g} +- "
        f"{max_offset_ps:.3g} ps, freq {freq_center:.3g} +- {max_freq:.3g}, {est.trials} trials"
        f" at {bin_ps:.3g} ps bins): best significance {est.significance:.2f} sigma, global "
        f"p {est.p_global:.2g}."
    )


def blind_search(
    t_a: NDArray[np.int64],
    t_b: NDArray[np.int64],
    *,
    max_offset_ps: float = 200e9,
    max_freq: float = 100e-6,
    center_ps: float = 0.0,
    freq_center: float = 0.0,
    bin_ps: float = 1e6,
    segment_ps: float = 50e9,
    zoom_bin_ps: float = 1000.0,
    zoom_budget: float = 2e7,
    max_p_global: float = 1e-6,
    min_significance: float = 5.0,
) -> OffsetEstimate:
    """Blind offset + frequency: FFT coarse stage, unfolded zoom, refinements to full span.

    Returns the estimate referenced to the middle of A's span, with the FFT stage's
    significance, global p, bin and trial count (``method="fft"``) and the refined offset,
    frequency, width and errors.
    """
    coarse = fft_search(
        t_a,
        t_b,
        max_offset_ps=max_offset_ps,
        max_freq=max_freq,
        center_ps=center_ps,
        freq_center=freq_center,
        bin_ps=bin_ps,
        segment_ps=segment_ps,
        max_p_global=max_p_global,
        min_significance=min_significance,
    )
    c = coarse.est
    a_seg = t_a[np.searchsorted(t_a, coarse.seg_lo_ps) : np.searchsorted(t_a, coarse.seg_hi_ps)]
    est = search_offset(
        a_seg,
        t_b,
        center_ps=c.offset_ps,
        half_range_ps=2.0 * bin_ps,
        freq_center=c.freq,
        freq_half_range=1.5 * coarse.freq_step,
        t_ref_ps=c.t_ref_ps,
        min_bin_ps=zoom_bin_ps,
        work_budget=zoom_budget,
        max_p_global=max_p_global,
        min_significance=min_significance,
    )
    # Grow the span: the window covers 5 sigma of the peak plus 5 sigma of the prediction,
    # and the span grows as far as the frequency error keeps that window <= max_window.
    full_lo, full_hi = int(t_a[0]), int(t_a[-1])
    span = float(coarse.seg_hi_ps - coarse.seg_lo_ps)
    for _ in range(MAX_GROWTH_STEPS):
        max_window = max(20.0 * est.width_ps, 5000.0)
        reach = (max_window / 5.0 - est.width_ps) / max(est.freq_err, 1e-18)
        span = min(max(2.0 * reach, 2.0 * span), float(full_hi - full_lo))
        lo = max(int(est.t_ref_ps - span / 2), full_lo)
        hi = min(int(lo + span), full_hi) + 1
        sub = t_a[np.searchsorted(t_a, lo) : np.searchsorted(t_a, hi)]
        far = max(abs(lo - est.t_ref_ps), abs(hi - est.t_ref_ps))
        pred = math.hypot(est.offset_err_ps, est.freq_err * far)
        est = refine(sub, t_b, est, window_ps=5.0 * est.width_ps + 5.0 * pred)
        if span >= full_hi - full_lo:
            break
    est = est.rereferenced((full_lo + full_hi) // 2)
    return replace(
        est,
        significance=c.significance,
        p_global=c.p_global,
        background_per_bin=c.background_per_bin,
        bin_ps=c.bin_ps,
        method="fft",
        trials=c.trials,
    )
