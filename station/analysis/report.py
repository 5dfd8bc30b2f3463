"""One-page PNG report of a pair of bundles: what an operator looks at after a pass.

Six panels on an A4-landscape page (matplotlib, Agg backend: no display, safe in the daemon
and in CI):

(a) elevation of the satellite at both stations vs time (the geometry the link lived in);
(b) singles rates of A and B (cps, log axis): pointing losses and background show here first;
(c) the residual clock offset followed through the pass: the tracker's curve
    (``PairResult.offset_series``) over the coincidences' measured offsets (track + ``dt``),
    so a tracking slip or a wrong prior is visible as points leaving the line;
(d) the coincidence histogram of t_B − t_A around the peak with the window and the
    accidental floor (the peak-to-floor ratio is the CAR);
(e) QBER (key mode) or CHSH S (Bell mode) per time bin, with CAR on a twin axis;
(f) the headline figures as text, ending with the fibre comparison
    (:mod:`station.analysis.fibre`: the pass's two-downlink loss in km of fibre).

Panel (e) needs each pair's B output. ``PairResult`` keeps B's codes only in the station
order (``b.code``), while the pipeline pairs a *reordered* B stream when rounding reorders it;
the report therefore uses ``b.code[pairs.idx_b]`` only if it rebuilds ``PairResult.matrix``
exactly, and otherwise plots CAR alone and says so on the panel.

The file is written atomically (temporary sibling, fsync, rename: a watcher never reads a
half-written PNG).
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from station.analysis import statistics as stats
from station.analysis.errors import AnalysisError
from station.analysis.fibre import fibre_from_result, format_power_of_ten
from station.analysis.key import KeyResult
from station.analysis.pipeline import PairResult
from station.analysis.schema import iso_utc
from station.recording.atomic import atomic_write_bytes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
PS = 10**12
#: A4 landscape (inches) and resolution: 1286 × 910 px, readable on screen and printable
PAGE_IN = (11.69, 8.27)
DPI = 110
#: a time bin needs this many pairs in the key bases / Bell settings for a plotted QBER or S
MIN_PAIRS_PER_BIN = 10
#: characters per line of the text panel (monospace 8.5 pt in a third of the page width)
TEXT_COLUMNS = 50

__all__ = [
    "BinnedStatistic",
    "binned_statistic",
    "fibre_lines",
    "headline",
    "pair_codes_b",
    "render",
    "write_report",
]


@dataclass(frozen=True)
class BinnedStatistic:
    """QBER or S per rate bin (NaN where too few pairs); ``kind`` is "qber" or "s"."""

    kind: str
    value: F64
    sigma: F64


def pair_codes_b(r: PairResult) -> npt.NDArray[np.uint8] | None:
    """B's analyzer output (0..3) of each pair (None when there are no pairs)."""
    if len(r.pairs) == 0:
        return None
    return np.asarray(r.pair_code_b, dtype=np.uint8)


def binned_statistic(r: PairResult, codes_b: npt.NDArray[np.uint8]) -> BinnedStatistic | None:
    """QBER (key configuration) or CHSH S (Bell configuration) per bin of ``r.rates``.

    Raw (no accidental subtraction): per-bin accidentals are too few for a per-cell matrix.
    Uses the estimators of :mod:`station.analysis.statistics` on each bin's 4×4 matrix.
    """
    s = r.summary
    kind = "qber" if s.qber is not None else "s" if s.chsh is not None else None
    if kind is None:
        return None
    edges = r.rates.bin_edges_ps
    nb = edges.size - 1
    ca = r.a.code[r.pairs.idx_a].astype(np.intp)
    k = np.searchsorted(edges, r.pair_t_ps, side="right") - 1
    ok = (k >= 0) & (k < nb) & (ca < 4) & (codes_b < 4)
    flat = np.bincount(
        k[ok] * 16 + ca[ok] * 4 + codes_b[ok].astype(np.intp), minlength=16 * max(nb, 0)
    )
    mats = flat.reshape(nb, 4, 4)
    value = np.full(nb, np.nan)
    sigma = np.full(nb, np.nan)
    for i in range(nb):
        if int(mats[i].sum()) < MIN_PAIRS_PER_BIN:
            continue
        try:
            if kind == "qber":
                q = stats.qber(mats[i], s.angles_a, s.angles_b, s.state)
                if q.n >= MIN_PAIRS_PER_BIN:
                    value[i], sigma[i] = q.qber, q.sigma_qber
            else:
                c = stats.chsh(mats[i], s.angles_a, s.angles_b, s.state)
                value[i], sigma[i] = c.s, c.sigma_s
        except AnalysisError:  # a setting pair without counts in this bin: leave NaN
            continue
    return BinnedStatistic(kind, value, sigma)


# --------------------------------------------------------------------------- panels


def _t_s(r: PairResult, t_ps: I64 | npt.NDArray[Any]) -> F64:
    """Seconds since the first rate bin's start (the common time axis of the panels)."""
    t0 = int(r.rates.bin_edges_ps[0])
    out: F64 = (np.asarray(t_ps, dtype=np.int64) - t0).astype(np.float64) / PS
    return out


def _mids_s(r: PairResult) -> F64:
    e = _t_s(r, r.rates.bin_edges_ps)
    out: F64 = (e[:-1] + e[1:]) / 2.0
    return out


def _panel_elevation(ax: Any, r: PairResult) -> None:
    t = _mids_s(r)
    for el, st, col in zip(r.elevation_deg, (r.a, r.b), ("C0", "C1"), strict=True):
        ax.plot(t, el, "o-", ms=3, color=col, label=st.station)
    ax.set_title("(a) satellite elevation")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("elevation (deg)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _panel_singles(ax: Any, r: PairResult) -> None:
    t = _mids_s(r)
    for rate, st, col in zip(r.singles_cps, (r.a, r.b), ("C0", "C1"), strict=True):
        y = np.where(rate > 0, rate, np.nan)  # log axis: empty bins are gaps, not -inf
        ax.plot(t, y, "o-", ms=3, color=col, label=f"{st.station} singles")
    ax.set_yscale("log")
    ax.set_title("(b) loss and singles")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("singles (cps)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")


def _panel_offset(ax: Any, r: PairResult) -> None:
    grid_t, grid_off = r.offset_series
    tg = _t_s(r, grid_t)
    if r.pair_t_ps.size:
        tp = _t_s(r, r.pair_t_ps)
        # a pair's measured offset = the tracked offset at its time + its residual dt
        track_at = np.interp(tp, tg, grid_off) if tg.size else np.zeros(tp.size)
        ax.plot(
            tp,
            (track_at + r.pair_dt_ps) / 1e3,
            ".",
            ms=2,
            alpha=0.4,
            color="0.4",
            label="coincidences",
        )
    ax.plot(tg, grid_off / 1e3, "-", color="C3", lw=1.5, label="tracked offset")
    ax.set_title("(c) residual offset B − A through the pass")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("offset after orbit prior (ns)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _panel_histogram(ax: Any, r: PairResult) -> None:
    edges, counts = r.histogram
    e_ns = np.asarray(edges, np.float64) / 1e3
    ax.stairs(counts, e_ns, color="C0", fill=True, alpha=0.6)
    half = r.window_ps / 2e3
    ax.axvspan(-half, half, color="C2", alpha=0.15, label=f"window {r.window_ps} ps")
    if edges.size > 1 and r.window_ps > 0:
        bin_ps = float(edges[1] - edges[0])
        floor = r.accidentals.mean * bin_ps / r.window_ps  # accidentals per histogram bin
        ax.axhline(floor, color="C3", ls="--", lw=1, label="accidental floor")
    # the floor is ~1 count per bin against a peak of hundreds: symlog shows both, and zeros
    ax.set_yscale("symlog", linthresh=1.0)
    if r.window_ps > 0 and e_ns.size:
        span = min(float(max(abs(e_ns[0]), abs(e_ns[-1]))), 6.0 * r.window_ps / 1e3)
        ax.set_xlim(-span, span)
    ax.set_title("(d) coincidence histogram")
    ax.set_xlabel("t_B − t_A − tracked offset (ns)")
    ax.set_ylabel("pairs per bin")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _panel_quality(ax: Any, r: PairResult) -> None:
    t = _mids_s(r)
    codes_b = pair_codes_b(r)
    binned = None if codes_b is None else binned_statistic(r, codes_b)
    if binned is not None:
        label = "QBER" if binned.kind == "qber" else "CHSH S"
        scale = 100.0 if binned.kind == "qber" else 1.0
        ax.errorbar(
            t,
            binned.value * scale,
            yerr=binned.sigma * scale,
            fmt="o",
            ms=4,
            color="C3",
            capsize=2,
            label=label,
        )
        ax.set_ylabel("QBER, raw (%)" if binned.kind == "qber" else "S, raw")
        if binned.kind == "s":
            ax.axhline(2.0, color="0.3", ls=":", lw=1, label="local bound 2")
        ax.legend(fontsize=8, loc="upper left")
    else:
        why = (
            "no key basis or Bell configuration"
            if codes_b is not None
            else "B's code per pair not on PairResult (B was reordered)"
        )
        ax.text(
            0.02,
            0.95,
            f"QBER/S vs time unavailable:\n{why}",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
            color="C3",
        )
        ax.set_yticks([])
    twin = ax.twinx()
    car = np.where(np.isfinite(r.rates.car), r.rates.car, np.nan)
    twin.plot(t, car, "s--", ms=3, color="C2", label="CAR")
    twin.set_ylabel("CAR", color="C2")
    ax.set_title("(e) QBER / S and CAR per time bin")
    ax.set_xlabel("time since start (s)")
    ax.grid(alpha=0.3)


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def fibre_lines(r: PairResult, *, pair_rate_hz: float | None = None) -> list[str]:
    """The fibre comparison in short lines (the panel's width), or why there is none."""
    f = fibre_from_result(r, pair_rate_hz=pair_rate_hz)
    if f is None:
        return ["fibre: no true coincidences over link time"]
    return [
        f"fibre: {f.channel_loss_db:.1f} dB = {f.equivalent_fibre_1550_km:.0f} km @1550 nm, "
        f"{f.equivalent_fibre_810_km:.0f} km @810 nm",
        f"{f.distance_km:.0f} km of fibre: "
        f"{format_power_of_ten(f.log10_fibre_pairs_1550_per_s)} pairs/s @1550 nm,",
        f"  {format_power_of_ten(f.log10_fibre_pairs_810_per_s)} pairs/s @810 nm"
        + (" (source rate assumed)" if f.pair_rate_is_default else ""),
    ]


def headline(
    r: PairResult, key: KeyResult | None, *, pair_rate_hz: float | None = None
) -> list[str]:
    """The text of panel (f): one figure per line, units in the text."""
    s = r.summary
    est = r.estimate
    lines = [
        f"{r.a.station} × {r.b.station}",
        f"start {iso_utc(r.ref_posix_s, int(r.rates.bin_edges_ps[0]))[:19]}Z, "
        f"{_fmt(r.duration_s, '.0f')} s",
        f"coincidences {r.coincidences} (window {r.window_ps} ps)",
        f"accidentals {_fmt(r.accidentals.mean, '.1f')} ± {_fmt(r.accidentals.sigma_mean, '.1f')}",
    ]
    if s.qber is not None:
        q = s.qber
        qc = s.qber_corrected
        lines.append(
            f"QBER {_fmt(100 * q.qber, '.2f')} ± {_fmt(100 * q.sigma_qber, '.2f')} %"
            + ("" if qc is None else f" (acc.-corr. {_fmt(100 * qc.qber, '.2f')} %)")
        )
        lines.append(f"visibility {_fmt(q.visibility, '.3f')}")
    if s.chsh is not None:
        c = s.chsh
        lines.append(
            f"S = {_fmt(c.s, '.3f')} ± {_fmt(c.sigma_s, '.3f')} "
            f"({_fmt(c.violation_sigma, '.1f')} σ)"
        )
    lines.append(
        f"offset {_fmt(est.offset_ps, '.0f')} ± {_fmt(est.offset_err_ps, '.0f')} ps, "
        f"σ_peak {_fmt(est.width_ps, '.0f')} ps"
    )
    p = "< 1e-300" if est.p_global == 0.0 else f"= {_fmt(est.p_global, '.2g')}"
    lines.append(f"peak significance {_fmt(est.significance, '.1f')} σ, p_global {p}")
    if r.locality is not None:
        lo = r.locality
        lines.append(
            f"locality margin ≥ {_fmt(lo.min_ps / 1e6, '.3f')} µs "
            f"({_fmt(100 * lo.fraction_spacelike, '.1f')} % space-like)"
        )
    k = key if key is not None else r.key
    if k is not None:
        lines.append(
            f"key: {k.n_sifted} sifted, Q_up {_fmt(100 * k.qber_upper, '.2f')} %, "
            f"{max(k.secure_length, 0)} secure bits"
        )
        if k.no_key_reason:
            lines.append(k.no_key_reason)
    elif r.sifted is not None:
        lines.append(f"key: {r.sifted.n} sifted bits (not distilled)")
    lines.extend(fibre_lines(r, pair_rate_hz=pair_rate_hz))
    if r.partial:
        lines.append("PARTIAL: " + "; ".join(r.partial_reasons))
    return lines


def _panel_text(ax: Any, r: PairResult, key: KeyResult | None, pair_rate_hz: float | None) -> None:
    ax.axis("off")
    ax.set_title("(f) headline figures")
    ax.text(
        0.0,
        1.0,
        "\n".join(
            textwrap.fill(line, TEXT_COLUMNS, subsequent_indent="  ")
            for line in headline(r, key, pair_rate_hz=pair_rate_hz)
        ),
        transform=ax.transAxes,
        va="top",
        ha="left",
        fontsize=8,
        family="DejaVu Sans Mono",
        linespacing=1.5,
    )


def render(
    r: PairResult, *, key: KeyResult | None = None, pair_rate_hz: float | None = None
) -> bytes:
    """The report as PNG bytes (no file I/O; :func:`write_report` writes them).

    ``pair_rate_hz``: the source's pair rate for the fibre line (None: the rig default).
    """
    # Figure() without pyplot: no global backend switch, no GUI, freed with the object
    fig = Figure(figsize=PAGE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg (raster, display-less) canvas, without touching rcParams
    axes = fig.subplots(2, 3)
    start = iso_utc(r.ref_posix_s, int(r.rates.bin_edges_ps[0]))[:19].replace("T", " ")
    title = f"qgs pass analysis — {r.a.station} (A) × {r.b.station} (B), {start} UTC"
    if r.a.pass_id:
        title += f", pass {r.a.pass_id}"
    fig.suptitle(title, fontsize=12)
    _panel_elevation(axes[0, 0], r)
    _panel_singles(axes[0, 1], r)
    _panel_offset(axes[0, 2], r)
    _panel_histogram(axes[1, 0], r)
    _panel_quality(axes[1, 1], r)
    _panel_text(axes[1, 2], r, key, pair_rate_hz)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def write_report(
    r: PairResult,
    path: Path,
    *,
    key: KeyResult | None = None,
    pair_rate_hz: float | None = None,
) -> Path:
    """Render the one-page report of ``r`` to ``path`` (PNG, atomic replace); returns path.

    ``key`` is the pooled :func:`station.analysis.pipeline.distill_key` result for the text
    panel (else ``r.key``).
    """
    atomic_write_bytes(Path(path), render(r, key=key, pair_rate_hz=pair_rate_hz))
    return Path(path)
