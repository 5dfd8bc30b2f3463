"""Coincidences on the fly from two stations' live frames: running count, QBER ± σ, S ± σ.

The consumer side of the live classical channel (:mod:`station.network.channel`). It runs
the offline chain of :mod:`station.analysis.pipeline` incrementally, with the same library
calls, so the live and offline results differ only in which few pairs sit at the edges:

1. each station's frames are taken in sequence order (duplicates ignored; a frame missing
   while :data:`GAP_FRAMES` later ones have arrived is declared lost and skipped); a frame is
   put on UTC once the next one has arrived (its PPS edge brackets the frame's events) with
   :func:`~station.analysis.timetransfer.fit_pps` on every edge so far and the daemon's
   anchor — the offline map;
2. B's times lose the orbit prior's differential time of flight
   (:func:`~station.analysis.pipeline.remove_flight_time`; the prior is rebuilt in
   10-minute spans as the pass goes on);
3. until locked, every :data:`LOCK_RETRY_S` of new data the offset search runs on
   everything so far (:func:`~station.analysis.offset.search_offset` ±1 µs with PPS on both
   sides, :func:`~station.analysis.offset.blind_search` otherwise), then
   :func:`~station.analysis.offset.refine`; the window is ±3σ of the refined peak
   (:func:`~station.analysis.coincidences.window_from_width`);
4. once locked, each call matches only the new stretch of time both stations have
   delivered (:func:`~station.analysis.coincidences.match` and ``accidentals`` with the
   pipeline's displaced windows) in a wide window (±:data:`HIST_HALF_PS`) and adds the pairs
   to a histogram of their residual delay × (A output, B output) — 20 columns: the 4×4
   revealed outcomes and the 2×2 bases of every pair. The coincidence window is chosen at
   estimate time as ±3σ of the peak in that histogram (what the offline pass does with its
   whole-pass width), so a width misjudged from the first few pairs costs nothing. The
   offset follows the clocks' random walk by re-refining on the last :data:`REFINE_S`
   seconds (the offline pass uses a Kalman smoother over the whole pass instead);
5. QBER ± σ (key bases) and CHSH S ± σ (Bell configuration) from the 4×4 matrix of the pairs
   inside the window (:func:`~station.analysis.statistics.summarise`), with the analyzers'
   source-frame angles from the frame headers (or the constructor).

Memory: before the lock at most :data:`PRELOCK_KEEP_S` of each station's events; after it
:data:`REFINE_S` (10 bytes per event). Cost per call: linear in the new events.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from station.analysis import coincidences as co
from station.analysis import statistics as stats
from station.analysis.errors import AnalysisError, NoCorrelation
from station.analysis.offset import OffsetEstimate, blind_search, refine, search_offset
from station.analysis.orbitprior import OrbitPrior, orbit_prior
from station.analysis.pipeline import (
    ACCIDENTAL_STEPS,
    ACCIDENTAL_UNIT_PS,
    AnalysisOptions,
    remove_flight_time,
)
from station.analysis.timetransfer import Anchor, TimeTransfer, fit_pps, from_anchor
from station.network.channel import LiveFrame
from station.tracking.site import Site

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
PS = 10**12
GAP_FRAMES = 3  #: a missing frame is given up once this many later ones have arrived
MAX_PENDING = 64  #: frames held per station waiting for their predecessor
PRELOCK_KEEP_S = 120.0  #: events kept per station while searching for the offset
REFINE_S = 20.0  #: the offset is re-refined on this much recent data
LOCK_MIN_S = 3.0  #: overlap needed before the first search
LOCK_RETRY_S = 2.0  #: new overlap between two searches
RATE_WINDOW_S = 10.0  #: the reported rate is over this much recent matched time
PRIOR_SPAN_S = 600.0
UNREVEALED = 255  #: code of an event whose outcome was not revealed
HIST_HALF_PS = 4000  #: pairs are matched and histogrammed within ±4 ns of the tracked offset
HIST_BIN_PS = 20
_NBINS = 2 * HIST_HALF_PS // HIST_BIN_PS
_CENTRES = (np.arange(_NBINS) + 0.5) * HIST_BIN_PS - HIST_HALF_PS
MIN_WIDTH_PAIRS = 30  #: pairs in the histogram before its width replaces the lock's
DISPLACEMENTS = tuple(s * k * ACCIDENTAL_UNIT_PS for k in ACCIDENTAL_STEPS for s in (-1, 1))
MARGIN_PS = max(abs(d) for d in DISPLACEMENTS) + 100_000  #: B events kept beyond a horizon


@dataclass(frozen=True)
class LiveEstimate:
    """The running result (times POSIX s; rates /s; offset ps; σ are 1σ statistical).

    ``coincidences``: pairs found so far; ``accidentals``: the expected accidental pairs
    among them; ``revealed_pairs``: pairs whose outcomes both stations revealed (all of
    them in Bell mode), the sample ``qber``/``s`` come from; ``sifted``: pairs in the same
    basis (the key-mode sifted-key size so far, revealed ones included).
    """

    t_utc: float
    coincidences: int
    rate_hz: float
    accidentals: float
    qber: float | None
    qber_sigma: float | None
    s: float | None
    s_sigma: float | None
    offset_ps: float | None
    locked: bool
    mode: str
    window_ps: int
    revealed_pairs: int
    sifted: int
    matched_s: float
    frames: dict[str, int] = field(default_factory=dict)
    lost_frames: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; NaN/inf become None."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            return v

        out: dict[str, Any] = clean(asdict(self))
        return out


@dataclass
class _Station:
    """One station's frames and its events on UTC (ps since the correlator's ref)."""

    site: Site
    pending: dict[int, LiveFrame] = field(default_factory=dict)
    next_seq: int | None = None
    started: bool = False
    received: int = 0
    duplicates: int = 0
    lost: int = 0
    edges: list[int] = field(default_factory=list)
    anchor: Anchor | None = None
    header: LiveFrame | None = None
    tt: TimeTransfer | None = None
    tt_edges: int = -1
    horizon_ps: int | None = None  #: UTC (ps since ref, A's scale for B) of data end
    t: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    code: U8 = field(default_factory=lambda: np.zeros(0, np.uint8))
    basis: U8 = field(default_factory=lambda: np.zeros(0, np.uint8))
    pps: bool = False

    def append(self, t: I64, code: U8, basis: U8) -> None:
        if t.size == 0:
            return
        self.t = np.concatenate((self.t, t))
        self.code = np.concatenate((self.code, code))
        self.basis = np.concatenate((self.basis, basis))
        boundary = self.t.size > t.size and int(self.t[-t.size]) < int(self.t[-t.size - 1])
        if boundary or (t.size > 1 and bool(np.any(t[1:] < t[:-1]))):
            order = np.argsort(self.t, kind="stable")
            self.t, self.code, self.basis = self.t[order], self.code[order], self.basis[order]

    def trim(self, before_ps: int) -> None:
        k = int(np.searchsorted(self.t, before_ps))
        if k:
            self.t, self.code, self.basis = self.t[k:], self.code[k:], self.basis[k:]


class LiveCorrelator:
    """Accumulates two stations' :class:`LiveFrame` s and estimates coincidences on the fly.

    ``sites`` (A, B): the stations (``Site.name`` = the frames' station names); ``tle``
    the pass's two element lines (orbit prior). ``angles``/``source_state`` override the
    frame headers' analyzer angles (source-frame degrees of H and D, per station).
    """

    def __init__(
        self,
        mode: Literal["bell", "key"],
        tle: tuple[str, str],
        sites: tuple[Site, Site],
        *,
        angles: tuple[tuple[float, float], tuple[float, float]] | None = None,
        source_state: stats.State | None = None,
        options: AnalysisOptions | None = None,
    ) -> None:
        if mode not in ("bell", "key"):
            raise ValueError(f"mode must be 'bell' or 'key', got {mode!r}")
        if sites[0].name == sites[1].name:
            raise ValueError(f"the two sites must differ, got {sites[0].name!r} twice")
        self.mode = mode
        self.tle = tle
        self.options = options or AnalysisOptions()
        self._angles = angles
        self._state = source_state
        self._st = {s.name: _Station(s) for s in sites}
        self._a, self._b = (self._st[s.name] for s in sites)
        self.ref: int | None = None
        self._prior: OrbitPrior | None = None
        self._prior_span: tuple[float, float] = (0.0, 0.0)
        self.est: OffsetEstimate | None = None
        self.window_ps = 0
        self._done_ps: int | None = None  #: A times before this are matched
        self._last_try_ps: int | None = None
        #: residual delay bin × (16 revealed A×B outputs, 4 A×B bases of every pair)
        self.hist = np.zeros((_NBINS, 20), np.int64)
        self.accidentals_wide = 0.0  #: expected accidentals in the ±HIST_HALF_PS window
        self.pairs = 0  #: pairs inside the window at the time they were matched (rate)
        self.matched_ps = 0
        self._history: deque[tuple[int, int]] = deque(maxlen=4096)
        self.rejected = 0  #: frames from unknown stations, other modes or other runs

    # ------------------------------------------------------------------ input

    def add(self, frame: LiveFrame) -> None:
        """Take a frame from either station (any order; duplicates and gaps tolerated)."""
        st = self._st.get(frame.station)
        if st is None or frame.mode != self.mode:
            self.rejected += 1
            return
        if st.header is not None and frame.run_id != st.header.run_id:
            self.rejected += 1
            return
        st.header = st.header or frame
        late = st.started and st.next_seq is not None and frame.seq < st.next_seq
        if frame.seq in st.pending or late:
            st.duplicates += 1
            return
        st.received += 1
        st.pending[frame.seq] = frame
        if not st.started:
            st.next_seq = min(st.pending)
        if len(st.pending) > MAX_PENDING:  # the predecessor is not coming: move on
            self._advance(st, force=True)

    # ------------------------------------------------------------------ estimate

    def estimate(self) -> LiveEstimate | None:
        """Process what arrived and return the running estimate (None before an offset lock)."""
        for st in (self._a, self._b):
            self._advance(st)
        if self.est is None:
            self._try_lock()
        if self.est is None:
            return None
        self._match_new()
        return self._summary()

    def flush(self) -> LiveEstimate | None:
        """End of pass: process every frame held (no successor will come) and estimate."""
        for st in (self._a, self._b):
            self._advance(st, force=True, final=True)
        if self.est is None:
            self._try_lock(force=True)
        if self.est is None:
            return None
        self._match_new()
        return self._summary()

    # ------------------------------------------------------------------ frames → UTC

    def _advance(self, st: _Station, *, force: bool = False, final: bool = False) -> None:
        while st.pending and st.next_seq is not None:
            seq = st.next_seq
            frame = st.pending.get(seq)
            if frame is None:
                newest = max(st.pending)
                if newest - seq >= GAP_FRAMES or force:
                    st.lost += 1
                    st.next_seq = seq + 1
                    continue
                return
            has_next = any(s > seq for s in st.pending)
            if not (has_next or final):
                return
            if not self._process(st, frame):
                return
            del st.pending[seq]
            st.next_seq = seq + 1
            st.started = True

    def _timescale(self, st: _Station, frame: LiveFrame) -> TimeTransfer | None:
        if frame.anchor is not None:
            st.anchor = Anchor(
                frame.anchor.tagger_ps, frame.anchor.posix_s, max(frame.anchor.uncertainty_s, 0.05)
            )
        if st.anchor is None:
            return None
        if len(st.edges) != st.tt_edges or st.tt is None:
            edges = np.asarray(st.edges, np.int64)
            st.tt = fit_pps(edges, st.anchor) if edges.size >= 2 else from_anchor(st.anchor)
            st.tt_edges = len(st.edges)
        return st.tt

    def _process(self, st: _Station, frame: LiveFrame) -> bool:
        """Map one frame onto UTC and append its events; False if no timescale yet."""
        new = {int(e) for e in frame.pps_ps}
        nxt = st.pending.get(frame.seq + 1)
        if nxt is not None:  # the next second's edge brackets this frame's last events
            new |= {int(e) for e in nxt.pps_ps}
        if not new <= set(st.edges[-8:]):
            st.edges = sorted(set(st.edges) | new)
        tt = self._timescale(st, frame)
        if tt is None:
            return False
        st.pps = tt.method == "pps"
        if self.ref is None:
            self.ref = math.floor(st.anchor.posix_s if st.anchor else 0.0) - 600
        ref = self.ref
        t = tt.to_utc_ps(frame.t_ps, ref)
        end = int(tt.to_utc_ps(np.array([frame.t_end_ps], np.int64), ref)[0])
        code = np.where(frame.revealed, frame.code, UNREVEALED).astype(np.uint8)
        basis = frame.basis.astype(np.uint8)
        if st is self._b:
            t = self._flight(t)
            end = int(self._flight(np.array([end], np.int64))[0])
        st.append(t, code, basis)
        st.horizon_ps = end if st.horizon_ps is None else max(st.horizon_ps, end)
        if self.est is None:
            st.trim(end - int(PRELOCK_KEEP_S * PS))
        return True

    def _flight(self, t_b_utc: I64) -> I64:
        """B's UTC times minus the orbit prior's t_B − t_A (A's arrival scale)."""
        assert self.ref is not None
        if t_b_utc.size == 0:
            return t_b_utc
        lo = self.ref + float(t_b_utc[0]) / PS - 5.0
        hi = self.ref + float(t_b_utc[-1]) / PS + 5.0
        if self._prior is None or lo < self._prior_span[0] or hi > self._prior_span[1]:
            a, b = self._a.site, self._b.site
            stop = max(hi, lo + PRIOR_SPAN_S)
            self._prior = orbit_prior(self.tle, a, b, start_posix=lo, stop_posix=stop)
            self._prior_span = (lo, stop)
        return remove_flight_time(self._prior, t_b_utc, self.ref)

    # ------------------------------------------------------------------ lock

    def _overlap(self) -> tuple[int, int] | None:
        a, b = self._a, self._b
        if a.horizon_ps is None or b.horizon_ps is None or not a.t.size or not b.t.size:
            return None
        lo, hi = max(int(a.t[0]), int(b.t[0])), min(a.horizon_ps, b.horizon_ps)
        return (lo, hi) if hi > lo else None

    def _try_lock(self, *, force: bool = False) -> None:
        span = self._overlap()
        if span is None or (span[1] - span[0] < LOCK_MIN_S * PS and not force):
            return
        if (
            not force
            and self._last_try_ps is not None
            and span[1] - self._last_try_ps < LOCK_RETRY_S * PS
        ):
            return
        self._last_try_ps = span[1]
        a, b = self._a, self._b
        opt = self.options
        try:
            if a.pps and b.pps:
                est = search_offset(
                    a.t,
                    b.t,
                    half_range_ps=opt.pps_half_range_ps,
                    freq_half_range=opt.pps_freq_half_range,
                    refine_result=False,
                )
                est = refine(
                    a.t, b.t, est, window_ps=max(8.0 * est.width_ps, 4000.0), fit_freq=False
                )
            else:
                ua = a.anchor.uncertainty_s if a.anchor else 1.0
                ub = b.anchor.uncertainty_s if b.anchor else 1.0
                half = 1e12 * (max(ua, 0.5) + max(ub, 0.5))
                est = blind_search(
                    a.t, b.t, max_offset_ps=min(half, 200e9), max_freq=opt.anchor_freq_half_range
                )
        except (NoCorrelation, ValueError) as exc:
            log.debug("live offset search: no lock yet (%s)", exc)
            return
        self.est = est
        self.window_ps = self._window(float(est.width_ps))
        self._done_ps = span[0]
        log.info(
            "live: offset locked at %.0f ps (σ %.0f ps, %d pairs in the peak)",
            est.offset_ps,
            est.width_ps,
            est.n_peak,
        )

    # ------------------------------------------------------------------ matching

    def _match_new(self) -> None:
        span = self._overlap()
        assert self.est is not None
        assert self._done_ps is not None
        if span is None:
            return
        a, b = self._a, self._b
        hi = span[1] - MARGIN_PS
        lo = self._done_ps
        if hi <= lo:
            return
        ia0, ia1 = np.searchsorted(a.t, [lo, hi])
        ib0, ib1 = np.searchsorted(b.t, [lo - MARGIN_PS, hi + MARGIN_PS])
        ta, tb = a.t[ia0:ia1], b.t[ib0:ib1]
        shift = np.rint(self.est.at(tb)).astype(np.int64)
        tb2 = tb - shift
        cb, sb = b.code[ib0:ib1], b.basis[ib0:ib1]
        if tb2.size > 1 and bool(np.any(np.diff(tb2) < 0)):
            order = np.argsort(tb2, kind="stable")
            tb2, cb, sb = tb2[order], cb[order], sb[order]
        ca, sa = a.code[ia0:ia1], a.basis[ia0:ia1]
        wide = 2 * HIST_HALF_PS
        pairs = co.match(ta, tb2, window_ps=wide)
        if len(pairs):
            row = np.clip((pairs.dt_ps + HIST_HALF_PS) // HIST_BIN_PS, 0, _NBINS - 1)
            ka, kb = ca[pairs.idx_a].astype(np.int64), cb[pairs.idx_b].astype(np.int64)
            both = (ka < 4) & (kb < 4)
            cell = row[both] * 20 + ka[both] * 4 + kb[both]
            bas = 16 + 2 * sa[pairs.idx_a].astype(np.int64) + sb[pairs.idx_b]
            flat = np.bincount(np.concatenate((cell, row * 20 + bas)), minlength=_NBINS * 20)
            self.hist += flat.reshape(_NBINS, 20)
            self.pairs += int(np.count_nonzero(np.abs(pairs.dt_ps) <= self.window_ps // 2))
        if ta.size and tb2.size:
            acc = co.accidentals(ta, tb2, window_ps=wide, displacements_ps=DISPLACEMENTS)
            self.accidentals_wide += acc.mean
        self.matched_ps += hi - lo
        self._done_ps = hi
        self._history.append((hi, self.pairs))
        self._refine(hi)
        keep = hi - int(REFINE_S * PS)
        a.trim(keep)
        b.trim(keep - MARGIN_PS)

    def _refine(self, hi: int) -> None:
        """Follow the clocks' walk: refine the offset on the last REFINE_S of data."""
        assert self.est is not None
        a, b = self._a, self._b
        lo = hi - int(REFINE_S * PS)
        ia0, ia1 = np.searchsorted(a.t, [lo, hi])
        ib0, ib1 = np.searchsorted(b.t, [lo - MARGIN_PS, hi + MARGIN_PS])
        if ia1 - ia0 < 3 or ib1 - ib0 < 3:
            return
        ta, tb = a.t[ia0:ia1], b.t[ib0:ib1]
        mid = int(ta[ta.size // 2])
        try:
            est = refine(
                ta,
                tb,
                self.est.rereferenced(mid),
                window_ps=max(8.0 * self._sigma(), 4000.0),
                fit_freq=False,
            )
        except NoCorrelation:
            return
        if abs(est.offset_ps - float(self.est.at(mid))) < 4.0 * self.est.width_ps:
            self.est = est

    # ------------------------------------------------------------------ result

    def _window(self, sigma_ps: float) -> int:
        opt = self.options
        return opt.window_ps or co.window_from_width(sigma_ps, k=opt.window_k_sigma)

    def _peak(self) -> tuple[float, float]:
        """(centre, σ) in ps of the coincidence peak in the residual-delay histogram of every
        pair: a Gaussian on a uniform accidental floor fitted by expectation-maximisation on
        the bins (Dempster, Laird & Rubin 1977; :func:`~station.analysis.offset.refine` does
        the same on the unbinned pairs); the lock's refined width while the histogram holds
        fewer than MIN_WIDTH_PAIRS."""
        assert self.est is not None
        counts = self.hist[:, 16:].sum(axis=1).astype(np.float64)
        total = float(counts.sum())
        if total < MIN_WIDTH_PAIRS:
            return 0.0, float(self.est.width_ps)
        mu, sigma, pi = 0.0, max(float(self.est.width_ps), HIST_BIN_PS), 0.5
        floor = 1.0 / (2 * HIST_HALF_PS)  # uniform density over the histogram (1/ps)
        for _ in range(100):
            g = np.exp(-0.5 * ((_CENTRES - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
            r = counts * pi * g / (pi * g + (1.0 - pi) * floor)
            sw = float(r.sum())
            if sw < 3.0:
                return 0.0, float(self.est.width_ps)
            mu_new = float(np.dot(r, _CENTRES)) / sw
            var = float(np.dot(r, (_CENTRES - mu_new) ** 2)) / sw
            s_new = max(math.sqrt(max(var - HIST_BIN_PS**2 / 12.0, 0.0)), HIST_BIN_PS / 2.0)
            pi = min(max(sw / total, 1e-9), 1.0 - 1e-9)
            done = abs(mu_new - mu) < 0.01 and abs(s_new - sigma) < 0.01
            mu, sigma = mu_new, s_new
            if done:
                break
        return mu, sigma

    def _sigma(self) -> float:
        return self._peak()[1]

    def _in_window(self) -> tuple[npt.NDArray[np.int64], int]:
        """The 20 histogram columns summed over the bins inside the current window."""
        mu, sigma = self._peak()
        self.window_ps = self._window(sigma)
        sel = np.abs(_CENTRES - mu) <= self.window_ps / 2.0
        cols: npt.NDArray[np.int64] = self.hist[sel].sum(axis=0)
        return cols, int(np.count_nonzero(sel))

    def _angles_state(self) -> tuple[tuple[float, float], tuple[float, float], stats.State]:
        ha, hb = self._a.header, self._b.header
        if self._angles is not None:
            ang_a, ang_b = self._angles
        else:
            assert ha is not None
            assert hb is not None
            ang_a, ang_b = ha.angles_deg, hb.angles_deg
        state = self._state or (ha.source_state if ha is not None else "phi+")
        return ang_a, ang_b, state

    def _summary(self) -> LiveEstimate:
        assert self.est is not None
        assert self.ref is not None
        assert self._done_ps is not None
        ang_a, ang_b, state = self._angles_state()
        cols, nbins = self._in_window()
        matrix = cols[:16].reshape(4, 4)
        coincidences = int(cols[16:].sum())
        qber = qs = s = ss = None
        try:
            summ = stats.summarise(matrix, ang_a, ang_b, state)
            if summ.qber is not None:
                qber, qs = summ.qber.qber, summ.qber.sigma_qber
            if summ.chsh is not None:
                s, ss = summ.chsh.s, summ.chsh.sigma_s
        except AnalysisError as exc:
            log.debug("live statistics not ready: %s", exc)
        rate = 0.0
        if len(self._history) >= 2:
            t_end, n_end = self._history[-1]
            old = [h for h in self._history if t_end - h[0] <= RATE_WINDOW_S * PS]
            t0, n0 = old[0] if len(old) >= 2 else self._history[0]
            rate = (n_end - n0) / ((t_end - t0) / PS) if t_end > t0 else 0.0
        elif self.matched_ps:
            rate = self.pairs / (self.matched_ps / PS)
        names = (self._a.site.name, self._b.site.name)
        return LiveEstimate(
            t_utc=self.ref + self._done_ps / PS,
            coincidences=coincidences,
            rate_hz=rate,
            accidentals=self.accidentals_wide * nbins * HIST_BIN_PS / (2 * HIST_HALF_PS),
            qber=qber,
            qber_sigma=qs,
            s=s,
            s_sigma=ss,
            offset_ps=float(self.est.offset_ps),
            locked=True,
            mode=self.mode,
            window_ps=int(self.window_ps),
            revealed_pairs=int(matrix.sum()),
            sifted=int(cols[16] + cols[19]),
            matched_s=self.matched_ps / PS,
            frames={n: st.received for n, st in zip(names, (self._a, self._b), strict=True)},
            lost_frames={n: st.lost for n, st in zip(names, (self._a, self._b), strict=True)},
        )
