"""Two stations' pass bundles → coincidences, QBER, CHSH S and key: the analysis chain.

Order of the steps (docs/analysis.md has the why of each):

1. read and verify both bundles (:mod:`station.analysis.bundles`);
2. time transfer per station: tagger ps → UTC from its PPS edges, or the manifest anchor,
   widened (:mod:`station.analysis.timetransfer`);
3. orbit prior: subtract the predicted differential time of flight (light time with the
   satellite's motion, Earth rotation, troposphere) from B's times
   (:mod:`station.analysis.orbitprior`), so the residual offset is small;
4. residual offset and drift search over the residual only (unfolded, with frequency
   trials; blind FFT mode without a time reference), refined, then followed through the pass
   (:mod:`station.analysis.offset`);
5. coincidences in a window set from the measured peak width, accidentals from displaced
   windows, the 4×4 matrix, rates and CAR vs time and elevation
   (:mod:`station.analysis.coincidences`);
6. statistics from the analyzers' source-frame angles recorded in each manifest: QBER per
   basis, visibility, CHSH S ± σ, the locality margin (:mod:`station.analysis.statistics`);
7. key (key mode): BBM92 sifting, then the budget over passes and distillation
   (:mod:`station.analysis.key`); coincidences whose outcomes the live classical channel
   revealed during the pass (the manifest's ``live_channel`` rule,
   :mod:`station.analysis.key.reveal`) are dropped from the key first.

Everything is computed on int64 picoseconds; float64 only for small residuals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivers.datatypes import ChannelMap
from station.analysis import coincidences as co
from station.analysis import statistics as stats
from station.analysis.bundles import StationData
from station.analysis.errors import BundlesMismatch, MissingMetadata, NoCorrelation
from station.analysis.key import KeyParams, KeyResult, SiftedKey, distill, sift
from station.analysis.key.reveal import LightTime, RevealParams, RuleAnchor, revealed_mask
from station.analysis.offset import (
    OffsetEstimate,
    OffsetTrack,
    refine,
    search_offset,
    track_offset,
)
from station.analysis.orbitprior import OrbitPrior, orbit_prior
from station.analysis.timetransfer import Anchor, TimeTransfer, fit_pps, from_anchor
from station.tracking.site import Site

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
PS = 10**12
C_M_S = 299_792_458.0
#: accidentals: windows displaced by these multiples of 10 ns on both sides of the peak
ACCIDENTAL_STEPS = (2, 3, 4, 5, 6)
ACCIDENTAL_UNIT_PS = 10_000
#: the analyzer-output codes of :mod:`station.analysis.bundles` (H=0, V=1, D=2, A=3) as a map
CODES = ChannelMap(0, 1, 2, 3)


@dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of :func:`analyze_pair`; the defaults suit a Micius-like pass with PPS."""

    #: half range of the residual search with PPS on both sides (ps): clock offsets are
    #: known to < 1 ns then; the margin covers a GPS receiver's PPS bias and model errors
    pps_half_range_ps: float = 1_000_000.0
    #: residual frequency range with PPS on both sides (the PPS fit removes the drift)
    pps_freq_half_range: float = 0.0
    #: residual frequency range when a side has no PPS (a free-running quartz: 1 ppm)
    anchor_freq_half_range: float = 1e-6
    #: coincidence window in units of the fitted peak sigma: ±k σ
    window_k_sigma: float = 3.0
    #: fixed window (ps) instead of ±k σ (None: from the measured width)
    window_ps: int | None = None
    rate_bin_s: float = 10.0
    #: random walk of the combined clocks for the offset tracker (ps/√s)
    random_walk_ps_per_sqrt_s: float = 30.0


@dataclass
class PairResult:
    """Everything one pair of bundles gives (JSON: :func:`station.analysis.schema.pair_to_json`)."""

    a: StationData
    b: StationData
    ref_posix_s: int
    #: the UTC interval (POSIX s) both stations recorded: where coincidences can exist
    overlap_posix: tuple[float, float]
    #: each station's tagger → UTC map (``offset_ps``: its reading at UTC ``ref_posix_s``)
    timing: tuple[TimeTransfer, TimeTransfer]
    estimate: OffsetEstimate
    track: OffsetTrack
    window_ps: int
    pairs: co.Pairs
    accidentals: co.AccidentalEstimate
    matrix: npt.NDArray[np.int64]
    summary: stats.CorrelationSummary
    locality: stats.LocalityMargin | None
    rates: stats.RateSeries
    elevation_deg: tuple[F64, F64]
    singles_cps: tuple[F64, F64]
    sifted: SiftedKey | None
    partial: bool
    partial_reasons: list[str]
    histogram: tuple[I64, I64]
    pair_t_ps: I64  #: A's detection time of each coincidence (ps since ref_posix_s, UTC)
    pair_dt_ps: I64  #: its residual delay in the window (ps)
    pair_code_a: npt.NDArray[np.uint8]  #: A's analyzer output per coincidence (0..3 = H,V,D,A)
    pair_code_b: npt.NDArray[np.uint8]  #: B's analyzer output per coincidence
    offset_series: tuple[I64, F64]
    key: KeyResult | None = None
    notes: list[str] = field(default_factory=list)
    #: key mode: coincidences whose outcome the live channel revealed at either station
    live_revealed_pairs: int = 0
    #: key mode: sifted bits dropped from the key because the live channel revealed them
    live_dropped_sifted: int = 0

    @property
    def coincidences(self) -> int:
        return len(self.pairs)

    @property
    def duration_s(self) -> float:
        edges = self.rates.bin_edges_ps
        return float(edges[-1] - edges[0]) / PS if edges.size > 1 else 0.0


# --------------------------------------------------------------------------- steps


def _site(st: StationData) -> Site:
    s = st.site
    return Site(
        st.station,
        s.latitude_deg,
        s.longitude_deg,
        s.altitude_m,
        pressure_hpa=s.pressure_hpa,
        temperature_c=s.temperature_c,
    )


def time_transfer(st: StationData) -> TimeTransfer:
    """The station's tagger → UTC map: PPS fit, or the manifest anchor widened."""
    # a PPS-sourced anchor names its second exactly (when the stream latency was < 1 s)
    anchor = Anchor(st.anchor_tagger_ps, st.anchor_posix_s, max(st.anchor_uncertainty_s, 0.05))
    if st.pps_ps.size >= 2:
        return fit_pps(st.pps_ps, anchor)
    return from_anchor(anchor)


def check_pair(a: StationData, b: StationData) -> None:
    """Refuse bundles that cannot be one two-station pass (one clear sentence each)."""
    if a.station == b.station:
        raise BundlesMismatch(
            f"both bundles are from station {a.station!r}; give one bundle per station"
        )
    if a.aos_posix and a.los_posix and b.aos_posix and b.los_posix:
        lo, hi = max(a.aos_posix, b.aos_posix), min(a.los_posix, b.los_posix)
        if hi <= lo:
            raise BundlesMismatch(
                f"{a.station} pass {a.pass_id} and {b.station} pass {b.pass_id} do not overlap "
                "in time: these are different passes"
            )
    if a.events == 0 or b.events == 0:
        empty = a if a.events == 0 else b
        raise BundlesMismatch(f"{empty.path}: no analyzer events were recorded")


def _tle(a: StationData, b: StationData) -> tuple[str, str]:
    tle = a.tle or b.tle
    if tle is None:
        raise MissingMetadata(
            f"{a.path}: neither manifest has the TLE the pass was predicted from; the orbit "
            "prior needs it"
        )
    return tle


def _prior(
    a: StationData, b: StationData, tle: tuple[str, str], ref: int, lo_ps: int, hi_ps: int
) -> OrbitPrior:
    return orbit_prior(
        tle,
        _site(a),
        _site(b),
        start_posix=ref + lo_ps / PS - 2.0,
        stop_posix=ref + hi_ps / PS + 2.0,
    )


def remove_flight_time(prior: OrbitPrior, t_b_utc: I64, ref: int) -> I64:
    """B's times minus the predicted t_B − t_A: on A's arrival timescale (ps, int64).

    Δ is a function of A's arrival time; B's event at t_B belongs to A's t_A = t_B − Δ(t_A),
    found by two fixed-point steps (|dΔ/dt| ≲ 5e-5, so 3 ms → 150 ns → 8 ps).
    """
    t_posix = ref + t_b_utc.astype(np.float64) / PS
    delta = prior.differential_ps(t_posix)
    for _ in range(2):
        delta = prior.differential_ps(t_posix - delta / PS)
    out: I64 = t_b_utc - np.rint(delta).astype(np.int64)
    return out


def _elevation(st: StationData, tle: tuple[str, str], t_posix: F64) -> F64:
    from sgp4.api import WGS72, Satrec

    from station.tracking.ephemeris import look_angles

    sat = Satrec.twoline2rv(tle[0], tle[1], WGS72)
    look = look_angles(sat, _site(st), t_posix, apparent=False, refraction=False)
    out: F64 = np.asarray(look.el_deg, dtype=np.float64)
    return out


def _distance_m(a: StationData, b: StationData) -> float:
    """Straight-line distance between the two stations (m), from their WGS84 positions."""
    return float(np.linalg.norm(_site(a).itrs_km - _site(b).itrs_km) * 1000.0)


def live_revealed(st: StationData) -> npt.NDArray[np.bool_] | None:
    """Which of the station's events the live channel revealed (key mode), or None.

    Recomputes the daemon's rule (:mod:`station.analysis.key.reveal`) from the manifest's
    ``analyzer.live_channel`` section (or a top-level ``live_channel``), the recorded PPS
    edges, the TLE and the site, with each revealed slot widened by the rule's guard (a
    revealed bit must never stay in the key).
    """
    analyzer = st.manifest.get("analyzer")
    live = st.manifest.get("live_channel") or (
        analyzer.get("live_channel") if isinstance(analyzer, dict) else None
    )
    if not isinstance(live, dict) or live.get("mode") != "key":
        return None
    anchor = live.get("rule_anchor")
    if not isinstance(anchor, dict) or st.tle is None:
        return np.zeros(st.t_ps.size, dtype=bool)  # the rule never started: nothing revealed
    try:
        params = RevealParams.from_json(live)
        rule = RuleAnchor(int(anchor["tagger_ps"]), int(anchor["posix_s"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingMetadata(
            f"{st.path}: the manifest's live_channel section is unusable ({exc}); expected "
            "fraction, seed, slot_s, guard_s and rule_anchor {tagger_ps, posix_s}"
        ) from None
    light = LightTime(st.tle, _site(st))
    return revealed_mask(st.t_ps, st.pps_ps, rule, light, params, guard=True)


def _arm_bit(code: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Codes 0..3 (H, V, D, A) → passive arm (0 H/V, 1 D/A) and outcome bit (0 "+", 1 "−")."""
    return (code >> 1).astype(np.uint8), (code & 1).astype(np.uint8)


# --------------------------------------------------------------------------- the chain


def analyze_pair(
    a: StationData, b: StationData, options: AnalysisOptions | None = None
) -> PairResult:
    """Run steps 2–6 (and sifting in key mode) on two loaded bundles (A first)."""
    opt = options or AnalysisOptions()
    check_pair(a, b)
    notes: list[str] = []
    partial_reasons = [f"{s.station} bundle is {s.status}" for s in (a, b) if s.partial]
    if a.analyzer.source_state != b.analyzer.source_state:
        raise BundlesMismatch(
            f"the bundles disagree on the source state ({a.analyzer.source_state} vs "
            f"{b.analyzer.source_state}); both stations must be configured for one source"
        )
    tt_a, tt_b = time_transfer(a), time_transfer(b)
    ref = math.floor(min(a.anchor_posix_s, b.anchor_posix_s)) - 600
    t_a = tt_a.to_utc_ps(a.t_ps, ref)
    t_b_utc = tt_b.to_utc_ps(b.t_ps, ref)
    lo = min(int(t_a[0]), int(t_b_utc[0]))
    hi = max(int(t_a[-1]), int(t_b_utc[-1]))
    tle = _tle(a, b)
    prior = _prior(a, b, tle, ref, lo, hi)
    t_b = remove_flight_time(prior, t_b_utc, ref)
    key_mode = a.analyzer.mode == "key" and b.analyzer.mode == "key"
    rev_a = live_revealed(a) if key_mode else None
    rev_b = live_revealed(b) if key_mode else None
    # the flight-time correction is monotonic but B's own order must survive rounding
    if t_b.size > 1 and np.any(np.diff(t_b) < 0):
        order = np.argsort(t_b, kind="stable")
        t_b, t_b_utc = t_b[order], t_b_utc[order]
        b_code = b.code[order]
        rev_b = None if rev_b is None else rev_b[order]
    else:
        b_code = b.code
    overlap_lo, overlap_hi = max(int(t_a[0]), int(t_b[0])), min(int(t_a[-1]), int(t_b[-1]))
    if overlap_hi <= overlap_lo:
        raise BundlesMismatch(
            f"{a.station} and {b.station} recorded at different times (no overlap on UTC "
            "after the time transfer): not one pass"
        )
    both_pps = tt_a.method == "pps" and tt_b.method == "pps"
    if both_pps:
        # both timescales are on UTC: no residual frequency to search (fitting one to a few
        # hundred pairs lets it wander); slow model errors are followed by the tracker
        est = search_offset(
            t_a,
            t_b,
            half_range_ps=opt.pps_half_range_ps,
            freq_half_range=opt.pps_freq_half_range,
            refine_result=False,
        )
        est = refine(t_a, t_b, est, window_ps=max(8.0 * est.width_ps, 4000.0), fit_freq=False)
    else:
        notes.append(
            "no PPS on "
            + ", ".join(s.station for s, tt in ((a, tt_a), (b, tt_b)) if tt.method != "pps")
            + ": the offset came from the manifest anchor and a blind search"
        )
        from station.analysis.offset import blind_search

        half = 1e12 * (max(a.anchor_uncertainty_s, 0.5) + max(b.anchor_uncertainty_s, 0.5))
        try:
            est = blind_search(
                t_a, t_b, max_offset_ps=min(half, 200e9), max_freq=opt.anchor_freq_half_range
            )
        except NoCorrelation as exc:
            raise NoCorrelation(
                f"{exc.message} Without PPS edges the time reference is the manifest anchor "
                f"(±{half / PS:.1f} s), and a blind search over ±200 ms needs ~10^4 pairs where "
                "a satellite pass gives a few hundred: record the PPS input."
            ) from None
    window_guess = max(4.0 * est.width_ps, 2000.0)
    track = track_offset(
        t_a,
        t_b,
        est,
        window_ps=window_guess,
        random_walk_ps_per_sqrt_s=opt.random_walk_ps_per_sqrt_s,
    )
    shift = np.rint(track.at(t_b)).astype(np.int64)
    t_b2 = t_b - shift
    if t_b2.size > 1 and np.any(np.diff(t_b2) < 0):
        order = np.argsort(t_b2, kind="stable")
        t_b2, t_b_utc, b_code = t_b2[order], t_b_utc[order], b_code[order]
        rev_b = None if rev_b is None else rev_b[order]
    window = opt.window_ps or co.window_from_width(float(est.width_ps), k=opt.window_k_sigma)
    pairs = co.match(t_a, t_b2, window_ps=window)
    code_a, code_b = a.code[pairs.idx_a], b_code[pairs.idx_b]  #: each pair's outputs
    displacements = [s * k * ACCIDENTAL_UNIT_PS for k in ACCIDENTAL_STEPS for s in (-1, 1)]
    acc = co.accidentals(
        t_a,
        t_b2,
        window_ps=window,
        displacements_ps=displacements,
        ch_a=a.code,
        ch_b=b_code,
        channels_a=CODES,
        channels_b=CODES,
    )
    matrix = co.count_matrix(code_a, code_b, CODES, CODES)
    state = a.analyzer.source_state
    summary = stats.summarise(
        matrix, a.analyzer.arm_angles, b.analyzer.arm_angles, state, accidentals_matrix=acc.matrix
    )
    # locality: real detection times on UTC (B not shifted by the flight-time difference)
    dist = _distance_m(a, b)
    pair_t_a = t_a[pairs.idx_a]
    locality = stats.locality_margin(pair_t_a, t_b_utc[pairs.idx_b], dist) if len(pairs) else None
    bin_ps = int(opt.rate_bin_s * PS)
    start = overlap_lo - overlap_lo % bin_ps
    stop = overlap_hi + (bin_ps - overlap_hi % bin_ps)
    acc_per_bin = stats.binned_counts(acc.times_ps, start_ps=start, stop_ps=stop, bin_ps=bin_ps)[
        1
    ] / len(displacements)
    rates = stats.car_series(pair_t_a, acc_per_bin, start_ps=start, stop_ps=stop, bin_ps=bin_ps)
    edges = rates.bin_edges_ps
    mids = ref + ((edges[:-1] + edges[1:]) / 2).astype(np.float64) / PS
    elev = (_elevation(a, tle, mids), _elevation(b, tle, mids))
    singles = (
        np.histogram(t_a, bins=edges)[0] / opt.rate_bin_s,
        np.histogram(t_b, bins=edges)[0] / opt.rate_bin_s,
    )
    hist_bin = max(window // 8, 50)
    hist = co.histogram(t_a, t_b2, half_range_ps=100 * hist_bin, bin_ps=hist_bin)
    sifted = None
    live_pairs = live_dropped = 0
    if key_mode and len(pairs):
        revealed = np.zeros(len(pairs), dtype=bool)
        if rev_a is not None:
            revealed |= rev_a[pairs.idx_a]
        if rev_b is not None:
            revealed |= rev_b[pairs.idx_b]
        keep = ~revealed
        arm_a, bit_a = _arm_bit(code_a)
        arm_b, bit_b = _arm_bit(code_b)
        anti = tuple(
            stats.ideal_correlation(a.analyzer.arm_angles[j], b.analyzer.arm_angles[j], state) < 0.0
            for j in (0, 1)
        )
        sifted = sift(
            arm_a[keep], bit_a[keep], arm_b[keep], bit_b[keep], anticorrelated=(anti[0], anti[1])
        )
        live_pairs = int(revealed.sum())
        live_dropped = int(np.count_nonzero(arm_a[revealed] == arm_b[revealed]))
        if live_pairs:
            notes.append(
                f"{live_dropped} sifted bits dropped from the key: the live channel revealed "
                f"their outcomes ({live_pairs} coincidences)"
            )
    grid = np.linspace(overlap_lo, overlap_hi, 200).astype(np.int64)
    return PairResult(
        a=a,
        b=b,
        ref_posix_s=ref,
        overlap_posix=(ref + overlap_lo / PS, ref + overlap_hi / PS),
        timing=(tt_a, tt_b),
        estimate=est,
        track=track,
        window_ps=int(window),
        pairs=pairs,
        accidentals=acc,
        matrix=matrix,
        summary=summary,
        locality=locality,
        rates=rates,
        elevation_deg=elev,
        singles_cps=(np.asarray(singles[0], np.float64), np.asarray(singles[1], np.float64)),
        sifted=sifted,
        partial=bool(partial_reasons),
        partial_reasons=partial_reasons,
        histogram=hist,
        pair_t_ps=pair_t_a,
        pair_dt_ps=pairs.dt_ps,
        pair_code_a=code_a,
        pair_code_b=code_b,
        offset_series=(grid, np.asarray(track.at(grid), np.float64)),
        notes=notes,
        live_revealed_pairs=live_pairs,
        live_dropped_sifted=live_dropped,
    )


def distill_key(
    results: Sequence[PairResult], *, params: KeyParams | None = None, seed: int = 0
) -> KeyResult | None:
    """Pool the sifted bits of every key-mode pass (the budget spans passes) and distil."""
    parts = [r.sifted for r in results if r.sifted is not None and len(r.sifted.a_bits)]
    if not parts:
        return None
    return distill(SiftedKey.concatenate(parts), params=params or KeyParams(), seed=seed)
