"""The world: truth for the emulated plant (orbit, link, pairs, detectors, station clocks).

One :class:`World` is shared by every emulator of the rig. It is a pure function of its
config, its seed and what the emulators report (actual mount pointing, actual HWP angle):
all randomness comes from keyed streams (:mod:`sim_hardware.world.rng`), so

- asking for [t0, t1) in one call or in many smaller calls gives the same events,
- a pair is detected or lost at each station independently of call order,
- the same seed gives the same streams.

Exception (physics, not convenience): the outcome of the *second*-listed station for a
pair detected at both depends on the first station's analyzer angle (no local model can
reproduce quantum correlations). The world remembers each station's HWP angle from its
``detections()`` calls (and :meth:`World.record_hwp`); if the first station has not yet
reported the time in question, its nearest reported angle is used (0 if none ever).

Event pipeline of :meth:`World.detections` (station X, window [t0, t1), processed in
pieces of ~3e5 events so that the arrays stay in the CPU caches):

1. emission slices whose photons can arrive in [t0 - lookback, t1) → pairs reaching X
   (:mod:`~sim_hardware.world.emission`), outcome → channel, station-local thinning by
   pointing coupling x efficiency, detection time = emission + light time + jitter, as
   int64 keys ``t << 2 | channel index``, sorted per slice (once per call);
2. background + dark counts per 10 ms detection block (Poisson per channel, sorted, cached);
3. the window's ranges of those sorted runs, merged (they barely overlap in time), then
   paralyzable dead time and afterpulses (:mod:`~sim_hardware.world.detectors`);
4. keep [t0, t1) (a bisection: the keys are time-sorted), drop disabled channels, add the
   PPS edges (true integer seconds);
5. station clock (offset, drift, random walk) and tagger epoch → int64 ps, time-sorted.

Cost: ~25-30 ns per event on one core, mostly the pair and jitter draws, the per-slice
sort and dead time; no Python loop runs per event.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt
from skyfield.api import EarthSatellite

from drivers.datatypes import AltAz
from drivers.errors import ConfigError
from sim_hardware.world import emission, link
from sim_hardware.world.clockmodel import StationClock
from sim_hardware.world.config import DetectorConfig, StationConfig, WorldConfig, jitter_sigma_ps
from sim_hardware.world.detectors import (
    CHANNEL_BITS,
    CHANNEL_MASK,
    JITTER_CLIP,
    afterpulse_delays_ps,
    apply_dead_time_and_afterpulses,
    flagged_positions,
    jitter_ps,
    lookback_ps,
)
from sim_hardware.world.emission import SLICE_PS, SLICE_S
from sim_hardware.world.geometry import StationGeometry
from sim_hardware.world.polframe import (
    fold_axis_deg,
    optics_parity,
    source_frame_angle,
    train_term_deg,
)
from sim_hardware.world.rng import Stream, generator
from sim_hardware.world.sky import load_sky

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
PS = 10**12
MAX_CALL_S = 600.0  #: longer calls are split, each part with its own pointing error
_EMIT_MARGIN_S = 1e-5
_PIECE_EVENTS = 300_000  #: calls are processed in pieces of about this many raw events
_HWP_HISTORY = 4096
_DRAW_CACHE = 32  #: cached emission slices / background blocks (both stations)
_ACCEPT_ALL = 1 << 26  #: acceptance threshold of a channel that keeps every pair


def _to_ps(t: float) -> int:
    """Exact picoseconds of a float POSIX time (round half to even)."""
    return round(Fraction(t) * PS)


class _Station:
    """Per-station state: config, geometry, clock, HWP history, cached scintillation."""

    def __init__(self, index: int, cfg: StationConfig, world: World, sat: EarthSatellite) -> None:
        self.index = index
        self.cfg = cfg
        self.geo = StationGeometry(
            world._sky, sat, cfg, world.config.satellite, world.config.source
        )
        self.clock = StationClock(
            cfg.clock, world.config.tagger_epoch, seed=world.seed, station_index=index
        )
        det = cfg.detectors
        self.passive = cfg.analyzer == "passive"
        #: -1: train-less analyzer (the plate leaves a mirror); +1: train + plate (a rotation)
        self.parity = optics_parity(cfg.optical_train)
        used = (0, 1, 2, 3) if self.passive else (0, 1)
        self.eff = np.array(det.efficiency)
        self.eff_max = max(det.efficiency[i] for i in used) or 1.0
        self.sigma_ps = jitter_sigma_ps(det)
        self.lookback_ps = lookback_ps(det) + int(JITTER_CLIP * self.sigma_ps) + 1
        self.channel_numbers = np.array(
            [cfg.channels.h, cfg.channels.v, cfg.channels.d, cfg.channels.a], dtype=np.uint8
        )
        #: (t0, t1, HWP reading, the optical train's mirror term 2ρ at the mount's axes)
        self.hwp_history: list[tuple[float, float, float, float]] = []
        self.scint: OrderedDict[int, F64] = OrderedDict()

    def scintillation(self, seed: int, k: int) -> float:
        block = k // 1024
        factors = self.scint.get(block)
        if factors is None:
            factors = emission.scintillation_factors(
                seed, self.index, block, self.cfg.scintillation_sigma_ln
            )
            self.scint[block] = factors
            if len(self.scint) > 64:
                self.scint.popitem(last=False)
        return float(factors[k % 1024])

    def hwp_at(self, t: float) -> float:
        """The HWP reading reported for time ``t`` (nearest report; 0 if none)."""
        return self._report_at(t)[0]

    def train_at(self, t: float) -> float:
        """The optical train's 2ρ (deg) at the mount's axes reported for ``t`` (nearest)."""
        return self._report_at(t)[1]

    def _report_at(self, t: float) -> tuple[float, float]:
        best, best_dist = (0.0, 0.0), math.inf
        for t0, t1, deg, train in reversed(self.hwp_history):
            if t0 <= t < t1:
                return deg, train
            dist = t0 - t if t < t0 else t - t1
            if dist < best_dist:
                best, best_dist = (deg, train), dist
        return best


class World:
    """Truth of the emulated plant; see the module docstring for the guarantees."""

    def __init__(self, config: WorldConfig, *, seed: int) -> None:
        if seed < 0:
            raise ConfigError(f"world seed must be >= 0, got {seed}", key="seed")
        self.config = config
        self.seed = seed
        self._sky = load_sky()
        sat_cfg = config.satellite
        try:
            sat = EarthSatellite(sat_cfg.tle_line1, sat_cfg.tle_line2, sat_cfg.name, self._sky.ts)
        except ValueError as exc:
            raise ConfigError(f"TLE not understood: {exc}", key="satellite.tle") from None
        self._stations = [_Station(i, s, self, sat) for i, s in enumerate(config.stations)]
        self._by_name = {s.cfg.name: s for s in self._stations}
        self._slice_cache: OrderedDict[int, tuple[float, float]] = OrderedDict()
        self._draw_cache: OrderedDict[tuple[int, int], emission.SliceDraws] = OrderedDict()
        self._background_cache: OrderedDict[tuple[int, int], _Run | None] = OrderedDict()

    # ------------------------------------------------------------------ geometry

    @property
    def station_names(self) -> list[str]:
        return [s.cfg.name for s in self._stations]

    def _station(self, name: str) -> _Station:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"unknown station {name!r}; the world has {self.station_names}"
            ) from None

    def prefetch_geometry(self, t0: float, t1: float) -> int:
        """Compute every station's geometry blocks for [t0, t1] ahead of need (thread-safe);
        returns the number computed. See :meth:`StationGeometry.prefetch`."""
        return sum(st.geo.prefetch(t0, t1) for st in self._stations)

    def line_of_sight(self, station: str, t: float) -> AltAz:
        """Where a telescope must point to see the satellite at POSIX t (deg).

        The apparent direction: geometric topocentric azimuth/elevation plus atmospheric
        refraction for the station's pressure and temperature. The mount's pointing error
        (hence the receiver coupling) is measured against this direction.
        """
        az, el = self._station(station).geo.apparent_az_el(t)
        return AltAz(az, el)

    def geometric_line_of_sight(self, station: str, t: float) -> AltAz:
        """Geometric (unrefracted) topocentric azimuth/elevation (deg) at POSIX t."""
        az, el, _ = self._station(station).geo.az_el_range(t)
        return AltAz(az, el)

    def is_visible(self, station: str, t: float) -> bool:
        """Whether the link is up: elevation at least the station's ``min_elevation_deg``."""
        st = self._station(station)
        return st.geo.az_el_range(t)[1] >= st.cfg.min_elevation_deg

    def record_hwp(
        self, station: str, t0: float, t1: float, hwp_deg: float, *, pointing: AltAz | None = None
    ) -> None:
        """Report a station's actual HWP reading over [t0, t1) (detections() does this too).

        ``pointing``: the mount's actual axis angles, which turn the optical train's mirrors
        (over the top the elevation axis stands at 180 - el); default: the line of sight.
        """
        st = self._station(station)
        if pointing is None:
            pointing = self.line_of_sight(station, 0.5 * (t0 + t1))
        train = train_term_deg(pointing.az_deg, pointing.el_deg, st.cfg.optical_train)
        hist = st.hwp_history
        hist.append((t0, t1, float(hwp_deg), float(train)))
        if len(hist) > _HWP_HISTORY:
            del hist[: len(hist) - _HWP_HISTORY]

    # ------------------------------------------------------------------ link

    def _link_efficiency(self, st: _Station, t: float) -> float:
        _, el, rng = st.geo.az_el_range(t)
        cfg = self.config
        return link.link_efficiency(rng, el, cfg.satellite, cfg.source, st.cfg)

    def _slice_p(self, k: int) -> tuple[float, float]:
        """Per-station probability that a pair of slice k reaches the detectors (common)."""
        p = self._slice_cache.get(k)
        if p is None:
            t_mid = (k + 0.5) * SLICE_S
            values = [0.0, 0.0]
            for st in self._stations:
                eta = self._link_efficiency(st, t_mid)
                if eta > 0.0:
                    eta *= st.scintillation(self.seed, k) * st.eff_max
                values[st.index] = min(1.0, eta)
            p = (values[0], values[1])
            self._slice_cache[k] = p
            if len(self._slice_cache) > 8192:
                self._slice_cache.popitem(last=False)
        return p

    def _draws(self, k: int, station: int, p: tuple[float, float]) -> emission.SliceDraws:
        """:func:`emission.draw_slice`, cached (consecutive call windows share slices)."""
        cache_key = (station, k)
        draws = self._draw_cache.get(cache_key)
        if draws is None:
            draws = emission.draw_slice(self.seed, k, station, p, self.config.source.pair_rate_hz)
            self._draw_cache[cache_key] = draws
            if len(self._draw_cache) > _DRAW_CACHE:
                self._draw_cache.popitem(last=False)
        return draws

    def _coupling(self, st: _Station, t: float, pointing: AltAz) -> float:
        err = pointing.separation_deg(self.line_of_sight(st.cfg.name, t))
        return link.receiver_coupling(err, st.cfg)

    def _analyzer_angles(
        self, st: _Station, t_detect: float, hwp_deg: float, train_deg: float
    ) -> F64:
        """Source-frame angles (deg) of the H and D outputs (polframe module docstring).

        The plate (fast axis at reading - hwp_zero) and the optical train are reflections:
        a = p·(β - 2χ) - Θ for β = 0 (H) and 45 (D), Θ = θ - 2ρ with 2ρ from the mount's
        actual axes (``train_deg``).
        """
        big_theta = float(fold_axis_deg(np.asarray(st.geo.theta_deg(t_detect) - train_deg)))
        chi = hwp_deg - st.cfg.hwp_zero_deg
        return np.array(
            [source_frame_angle(st.parity, big_theta, chi, beta) for beta in (0.0, 45.0)]
        )

    # ------------------------------------------------------------------ events

    def detections(
        self,
        station: str,
        t0: float,
        t1: float,
        *,
        pointing: AltAz,
        hwp_deg: float,
        channels_enabled: frozenset[int] | None = None,
    ) -> tuple[I64, U8]:
        """Events detected at ``station`` in true time [t0, t1) (POSIX s).

        Returns tagger readings as int64 ps since ``config.tagger_epoch`` (station clock
        applied) and uint8 channel numbers, sorted by time. ``pointing`` is the actual
        mount direction at the middle of the window; the mount is assumed to keep that
        error against the moving line of sight through the window. ``hwp_deg`` is the
        actual HWP reading.
        """
        st = self._station(station)
        if not t1 > t0:
            return np.empty(0, np.int64), np.empty(0, np.uint8)
        self.record_hwp(station, t0, t1, hwp_deg, pointing=pointing)
        if t1 - t0 > MAX_CALL_S:
            parts = []
            edge = t0
            while edge < t1:
                nxt = min(t1, edge + MAX_CALL_S)
                parts.append(self._window(st, edge, nxt, pointing, hwp_deg, channels_enabled))
                edge = nxt
            times = np.concatenate([p[0] for p in parts])
            chans = np.concatenate([p[1] for p in parts])
            return times, chans
        return self._window(st, t0, t1, pointing, hwp_deg, channels_enabled)

    def _window(
        self,
        st: _Station,
        t0: float,
        t1: float,
        pointing: AltAz,
        hwp_deg: float,
        channels_enabled: frozenset[int] | None,
    ) -> tuple[I64, U8]:
        """[t0, t1) with one pointing error, in pieces of about ``_PIECE_EVENTS`` events.

        Results never depend on where windows are cut, so a busy window is processed as
        pieces whose arrays stay in the CPU caches (whole-array passes over tens of MB run
        at memory speed); a quiet one in one piece (each piece has a fixed cost). Emission
        slices straddling two pieces are computed once (``slices``, valid for this call's
        coupling and HWP angle only).
        """
        t_mid = 0.5 * (t0 + t1)
        accept = _Acceptance(st, self._coupling(st, t_mid, pointing))
        slices: dict[int, _Run | None] = {}
        p = self._slice_p(emission.slice_of(t_mid))[st.index]
        rate = self.config.source.pair_rate_hz * p + float(
            np.sum(self._background_rates(st, t_mid))
        )
        n = max(1, math.ceil(rate * (t1 - t0) / _PIECE_EVENTS))
        piece_s = (t1 - t0) / n
        inner = [t0 + i * piece_s for i in range(1, n)]
        edges = [t0, *(e for e in inner if e < t1), t1]
        parts = [
            self._piece(st, a, b, accept, hwp_deg, slices, channels_enabled)
            for a, b in itertools.pairwise(edges)
        ]
        if len(parts) == 1:
            return parts[0]
        times = np.concatenate([p[0] for p in parts])
        chans = np.concatenate([p[1] for p in parts])
        return times, chans

    def _piece(
        self,
        st: _Station,
        t0: float,
        t1: float,
        accept: _Acceptance,
        hwp_deg: float,
        slices: dict[int, _Run | None],
        channels_enabled: frozenset[int] | None,
    ) -> tuple[I64, U8]:
        """The event pipeline (module docstring) for [t0, t1)."""
        t0_ps, t1_ps = _to_ps(t0), _to_ps(t1)
        base_ps = t0_ps - st.lookback_ps
        raw = _RawEvents(t1_ps - base_ps)
        self._signal(st, base_ps, t1_ps, accept, hwp_deg, slices, raw)
        self._background(st, base_ps, t1_ps, raw)
        ap_keys, ap_delays = raw.afterpulse_parents()
        events = apply_dead_time_and_afterpulses(
            raw.sorted_keys(), ap_keys, ap_delays, st.cfg.detectors
        )
        lo, hi = np.searchsorted(
            events, [(t0_ps - base_ps) << CHANNEL_BITS, (t1_ps - base_ps) << CHANNEL_BITS]
        )
        events = events[lo:hi]  # a view of an array of this call: shifted in place below
        ch_idx = events & CHANNEL_MASK
        if channels_enabled is not None:
            enabled = np.array([int(c) in channels_enabled for c in st.channel_numbers])
            if not enabled.all():
                keep = enabled[ch_idx]
                events, ch_idx = events[keep], ch_idx[keep]
        chans = np.take(st.channel_numbers, ch_idx)
        events >>= CHANNEL_BITS
        t_rel = events
        pps_t, pps_ch = self._pps(st, t0, t1, base_ps, channels_enabled)
        if pps_t.size:
            at = np.searchsorted(t_rel, pps_t)
            t_rel = np.insert(t_rel, at, pps_t)
            chans = np.insert(chans, at, pps_ch.astype(np.uint8))
        return self._to_tagger(st, base_ps, t_rel), chans

    def _signal(
        self,
        st: _Station,
        base_ps: int,
        t1_ps: int,
        accept: _Acceptance,
        hwp_deg: float,
        slices: dict[int, _Run | None],
        raw: _RawEvents,
    ) -> None:
        """Signal photons of the emission slices whose light can arrive in [base, t1)."""
        w0, w1 = base_ps / PS, t1_ps / PS
        margin = _EMIT_MARGIN_S + JITTER_CLIP * st.sigma_ps / PS
        k_lo = emission.slice_of(w0 - st.geo.tof(w0) - margin)
        k_hi = emission.slice_of(w1 - st.geo.tof(w1) + margin)
        for k in [k for k in slices if k < k_lo]:  # pieces move forward: never needed again
            del slices[k]
        for k in range(k_lo, k_hi + 1):
            if k not in slices:
                slices[k] = self._detect_slice(st, k, accept, hwp_deg)
            run = slices[k]
            if run is not None:
                raw.add(run, k * SLICE_PS - base_ps)

    def _detect_slice(
        self, st: _Station, k: int, accept: _Acceptance, hwp_deg: float
    ) -> _Run | None:
        """The detections at ``st`` of the pairs of emission slice k (times after k Δ).

        Jitter, afterpulse flags and delays are drawn for all the slice's detections from
        the slice's own stream, so they do not depend on the caller's window boundaries.
        Sorted here, once: a window then takes a contiguous range of each slice, and the
        concatenated ranges are nearly sorted (consecutive slices overlap by ~2 jitter
        clips) for a cheap merge.
        """
        cfg = self.config
        p = self._slice_p(k)
        if p[st.index] <= 0.0:
            return None
        draws = self._draws(k, st.index, p)
        if draws.t_emit.size == 0:
            return None
        t_start = k * SLICE_S
        tof = st.geo.tof_cubic(t_start)
        ch = emission.channel_index(draws.bits, st.passive)
        if st.index == 1 and draws.n_both:
            nb = draws.n_both
            t_det_mid = t_start + 0.5 * SLICE_S + tof[0]
            p_plus = self._conditional_plus(
                st,
                self._stations[0],
                draws,
                t_start,
                t_det_mid,
                hwp_deg,
                cfg.source.state,
                cfg.source.visibility,
            )
            minus = emission.outcome_uniform(draws.bits[:nb]) >= p_plus
            ch[:nb] = (ch[:nb] & np.uint64(2)) | minus.astype(np.uint64)
        u = draws.t_emit  # cached: never modified in place
        if accept.threshold != _ACCEPT_ALL:
            field = emission.accept_field(draws.bits)
            kept = field < (accept.x[ch] if accept.threshold is None else accept.threshold)
            u, ch = u[kept], ch[kept]
        m = u.size
        if m == 0:
            return None
        rng = generator(self.seed, Stream.LOCAL, k, st.index)
        # Detection time after k Δ (ps): (u + τ(u)) 1e12 + jitter, τ the cubic light time;
        # Horner in u with the coefficients in ps, in place.
        t_f = u * (tof[3] * PS)
        t_f += tof[2] * PS
        t_f *= u
        t_f += (1.0 + tof[1]) * PS
        t_f *= u
        t_f += tof[0] * PS
        t_f += jitter_ps(rng, m, st.sigma_ps)
        keys = np.rint(t_f, out=t_f).astype(np.int64)
        keys <<= CHANNEL_BITS
        keys |= ch.view(np.int64)
        det = st.cfg.detectors
        flagged = flagged_positions(rng, m, det.afterpulse_prob)
        delays = afterpulse_delays_ps(rng, flagged.size, det)
        ap_keys = keys[flagged]
        keys.sort()
        return _Run(keys, ap_keys, delays)

    def _conditional_plus(
        self,
        st: _Station,
        first: _Station,
        draws: emission.SliceDraws,
        t_start: float,
        t_det_mid: float,
        hwp_deg: float,
        state: str,
        vis: float,
    ) -> F64:
        """P(+) at the second station for pairs also detected at the first station."""
        nb = draws.n_both
        t_first = t_start + 0.5 * SLICE_S + first.geo.tof(t_start)
        a_ref = self._analyzer_angles(first, t_first, *first._report_at(t_first))
        b_ref = self._analyzer_angles(st, t_det_mid, hwp_deg, st.train_at(t_det_mid))
        fbits = draws.first_bits
        a_arm = emission.arm_of(fbits) if first.passive else np.zeros(nb, np.uint8)
        b_arm = emission.arm_of(draws.bits[:nb]) if st.passive else np.zeros(nb, np.uint8)
        x_a = np.where(emission.outcome_uniform(fbits) < 0.5, 1.0, -1.0)
        a_deg = a_ref[a_arm]
        b_deg = b_ref[b_arm]
        e = emission.correlation(state, a_deg, b_deg)
        out: F64 = 0.5 * (1.0 + vis * x_a * e)
        return out

    def _background(self, st: _Station, base_ps: int, t1_ps: int, raw: _RawEvents) -> None:
        """Background and dark counts of the detection blocks overlapping [base, t1)."""
        det = st.cfg.detectors
        j_lo, j_hi = base_ps // SLICE_PS, (t1_ps - 1) // SLICE_PS
        for j in range(j_lo, j_hi + 1):
            run = self._background_block(st, j, det)
            if run is not None:
                raw.add(run, j * SLICE_PS - base_ps)

    def _background_block(self, st: _Station, j: int, det: DetectorConfig) -> _Run | None:
        """Raw background of detection block j (times after j Δ), drawn from the block's own
        stream: times, then afterpulse flags and delays (cached: a call window usually
        overlaps the block of the previous call)."""
        cache_key = (st.index, j)
        if cache_key in self._background_cache:
            return self._background_cache[cache_key]
        rates = self._background_rates(st, (j + 0.5) * SLICE_S)
        rng = generator(self.seed, Stream.BACKGROUND, j, st.index)
        counts = rng.poisson(rates * SLICE_S)
        n = int(counts.sum())
        run: _Run | None = None
        if n:
            offset = (rng.random(n) * SLICE_PS).astype(np.int64)
            keys = (offset << CHANNEL_BITS) | np.repeat(np.arange(4, dtype=np.int64), counts)
            flagged = flagged_positions(rng, n, det.afterpulse_prob)
            delays = afterpulse_delays_ps(rng, flagged.size, det)
            ap_keys = keys[flagged]
            keys.sort()
            run = _Run(keys, ap_keys, delays)
        self._background_cache[cache_key] = run
        if len(self._background_cache) > _DRAW_CACHE:
            self._background_cache.popitem(last=False)
        return run

    def _background_rates(self, st: _Station, t: float) -> F64:
        """Background + dark counts per channel index (cps) at POSIX ``t``."""
        bg = st.cfg.background
        sky = bg.night_sky_cps
        if bg.moon_cps or bg.daylight_cps:
            sun_alt, moon_alt, illum = st.geo.sun_moon(t)
            if moon_alt > 0.0:
                sky += bg.moon_cps * illum
            sky += bg.daylight_cps * min(1.0, max(0.0, (sun_alt + 12.0) / 12.0))
        rates = np.array(st.cfg.detectors.dark_cps, dtype=np.float64)
        if st.passive:
            rates += sky / 4.0
        else:
            rates[:2] += sky / 2.0
        return rates

    def _pps(
        self,
        st: _Station,
        t0: float,
        t1: float,
        base_ps: int,
        channels_enabled: frozenset[int] | None,
    ) -> tuple[I64, I64]:
        ch = st.cfg.pps_channel
        if ch is None or (channels_enabled is not None and ch not in channels_enabled):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        seconds = range(math.ceil(t0), math.ceil(t1))
        t_rel = np.array([s * PS - base_ps for s in seconds], dtype=np.int64)
        sigma = st.cfg.clock.pps_jitter_ps
        if sigma > 0 and t_rel.size:
            jit = [generator(self.seed, Stream.PPS, s, st.index).standard_normal() for s in seconds]
            t_rel = t_rel + np.rint(np.array(jit) * sigma).astype(np.int64)
        return t_rel, np.full(t_rel.size, ch, dtype=np.int64)

    def _to_tagger(self, st: _Station, base_ps: int, t_rel: I64) -> I64:
        """Tagger readings of the time-sorted true times ``base_ps + t_rel`` (ps)."""
        offset = base_ps - _to_ps(self.config.tagger_epoch)
        if not -(2**62) < offset < 2**62:
            raise ValueError(
                f"time {base_ps / PS:.0f} is {offset / PS / 86400:.0f} days from the tagger "
                "epoch; int64 ps covers ±106 days: set [world] tagger_epoch_utc near the run"
            )
        return st.clock.readings_ps(offset, t_rel)

    # ------------------------------------------------------------------ closed form

    def expected_rates(
        self, station: str, t: float, *, pointing: AltAz, hwp_deg: float
    ) -> dict[str, float]:
        """Closed-form mean rates (cps) at ``t``: per channel singles, signal, background.

        Signal per channel = R η coupling eff_c / (4 passive | 2 active) with the
        scintillation mean (1). Singles include the paralyzable dead-time survival
        e^{-rτ} and afterpulses (1 + p_ap). ``hwp_deg`` does not change singles (the
        marginal of an entangled photon is unpolarized); it is accepted for symmetry.
        """
        st = self._station(station)
        det = st.cfg.detectors
        eta = self._link_efficiency(st, t)
        coupling = self._coupling(st, t, pointing)
        share = 0.25 if st.passive else np.array([0.5, 0.5, 0.0, 0.0])
        signal = self.config.source.pair_rate_hz * eta * coupling * st.eff * share
        bg_total = self._background_rates(st, t)
        dark = np.array(det.dark_cps)
        raw = signal + bg_total
        singles = raw * np.exp(-raw * det.dead_time_ns * 1e-9) * (1.0 + det.afterpulse_prob)
        out = {
            "transmittance": eta,
            "coupling": coupling,
            "signal_cps": float(np.sum(signal)),
            "background_cps": float(np.sum(bg_total - dark)),
            "dark_cps": float(np.sum(dark)),
            "singles_cps": float(np.sum(singles)),
            "pps_cps": 0.0 if st.cfg.pps_channel is None else 1.0,
        }
        for i, ch in enumerate(st.channel_numbers):
            out[f"singles_{int(ch)}"] = float(singles[i])
            out[f"signal_{int(ch)}"] = float(signal[i])
        return out

    def truth(self, station: str, t: float) -> dict[str, float]:
        """Geometry and link truth at ``t`` for tests and logs (SI units, degrees).

        ``az_deg``/``el_deg`` are geometric; ``apparent_el_deg`` = ``el_deg`` +
        ``refraction_deg`` is where the telescope must point (see :meth:`line_of_sight`).
        """
        st = self._station(station)
        az, el, rng = st.geo.az_el_range(t)
        sun_alt, moon_alt, illum = st.geo.sun_moon(t)
        t_ps = _to_ps(t) - _to_ps(self.config.tagger_epoch)
        refraction = st.geo.refraction_deg(el)
        # Θ behind the train with the mount on the line of sight (not over the top)
        train = train_term_deg(az, el + refraction, st.cfg.optical_train)
        big_theta = float(fold_axis_deg(np.asarray(st.geo.theta_deg(t) - train)))
        return {
            "az_deg": az,
            "el_deg": el,
            "refraction_deg": refraction,
            "apparent_el_deg": el + refraction,
            "range_m": rng,
            "tof_s": st.geo.tof(t),
            "transmittance": self._link_efficiency(st, t),
            "airmass": link.kasten_young_airmass(el),
            "theta_deg": big_theta,
            # the plate reading that makes the source-frame angles constant: χ = -p·Θ/2
            "hwp_compensation_deg": -st.parity * big_theta / 2.0 + st.cfg.hwp_zero_deg,
            "optics_parity": float(st.parity),
            "sun_alt_deg": sun_alt,
            "moon_alt_deg": moon_alt,
            "moon_illumination": illum,
            "clock_error_s": float(st.clock.error_ps(np.array([t_ps / PS]))[0]) / PS,
            "visible": float(el >= st.cfg.min_elevation_deg),
        }


class _Acceptance:
    """Station-local thinning of a call: P(keep) = coupling x efficiency / best efficiency.

    ``accept uniform < a`` in integers: the uniform is x / 2^26 with x the 26-bit field,
    and x / 2^26 < a  <=>  x < ceil(a 2^26) exactly (x integer).
    """

    def __init__(self, st: _Station, coupling: float) -> None:
        accept = np.minimum(coupling * st.eff / st.eff_max, 1.0)
        self.x = np.ceil(accept * _ACCEPT_ALL).astype(np.uint64)  #: per channel index
        used = self.x[: 4 if st.passive else 2]
        #: one threshold for every channel (equal efficiencies): a compare, no gather
        self.threshold = int(used[0]) if used.min() == used.max() else None


@dataclass(frozen=True, slots=True)
class _Run:
    """Raw detections of an emission slice or a background block, times after its start."""

    keys: I64  #: sorted ``t << CHANNEL_BITS | channel index`` (t in ps after the start)
    ap_keys: I64  #: the keys flagged to afterpulse if they survive dead time (any order)
    ap_delays: F64  #: their afterpulse delays (ps)


class _RawEvents:
    """The raw detections of one window piece [base, base + span): ranges of runs."""

    def __init__(self, span_ps: int) -> None:
        self._end = span_ps << CHANNEL_BITS
        self._ranges: list[tuple[I64, int]] = []  #: (sorted keys, shift to the piece base)
        self._ap_keys: list[I64] = [np.empty(0, np.int64)]
        self._ap_delays: list[F64] = [np.empty(0)]

    def add(self, run: _Run, start_ps: int) -> None:
        """Add the part in the piece of a run that starts ``start_ps`` after the base."""
        shift = start_ps << CHANNEL_BITS
        lo, hi = np.searchsorted(run.keys, [-shift, self._end - shift]).tolist()
        if hi > lo:
            self._ranges.append((run.keys[lo:hi], shift))
        if run.ap_keys.size:
            ap = run.ap_keys + shift
            sel = (ap >= 0) & (ap < self._end)
            self._ap_keys.append(ap[sel])
            self._ap_delays.append(run.ap_delays[sel])

    def sorted_keys(self) -> I64:
        """All keys after the base, time-sorted (a new array).

        The ranges are sorted runs that barely overlap in time (slices) or are few
        (background): a merging sort (timsort) takes ~1 ns per event here.
        """
        out = np.empty(sum(r.size for r, _ in self._ranges), np.int64)
        pos = 0
        for r, shift in self._ranges:
            np.add(r, shift, out=out[pos : pos + r.size])
            pos += r.size
        out.sort(kind="stable")
        return out

    def afterpulse_parents(self) -> tuple[I64, F64]:
        """Keys (after the base) of the flagged events, and their afterpulse delays (ps)."""
        return np.concatenate(self._ap_keys), np.concatenate(self._ap_delays)
