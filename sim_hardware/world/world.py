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

Event pipeline of :meth:`World.detections` (station X, window [t0, t1)):

1. emission slices whose photons can arrive in [t0 - lookback, t1) → pairs reaching X
   (:mod:`~sim_hardware.world.emission`), outcome → channel, station-local thinning by
   pointing coupling x efficiency, detection time = emission + light time + jitter;
2. background + dark counts per 10 ms detection block (Poisson per channel);
3. paralyzable dead time and afterpulses (:mod:`~sim_hardware.world.detectors`);
4. keep [t0, t1), drop disabled channels, add the PPS edges (true integer seconds);
5. station clock (offset, drift, random walk) and tagger epoch → int64 ps, time-sorted.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
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
    CHANNEL_SHIFT,
    TIME_MASK,
    afterpulse_delays_ps,
    apply_dead_time_and_afterpulses,
    lookback_ps,
)
from sim_hardware.world.emission import SLICE_PS, SLICE_S
from sim_hardware.world.geometry import StationGeometry
from sim_hardware.world.rng import Stream, generator
from sim_hardware.world.sky import load_sky

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
PS = 10**12
MAX_CALL_S = 600.0  #: longer windows are processed in pieces (keys hold < 2^56 ps)
_JITTER_CLIP = 6.0  #: jitter is a Gaussian truncated at this many sigma
_EMIT_MARGIN_S = 1e-5
_HWP_HISTORY = 4096
_DRAW_CACHE = 32  #: cached emission slices / background blocks (both stations)
_MASK26 = np.uint64((1 << 26) - 1)  #: a 26-bit uniform field of the per-pair bits


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
        used = (0, 1, 2, 3) if self.passive else (0, 1)
        self.eff = np.array(det.efficiency)
        self.eff_max = max(det.efficiency[i] for i in used) or 1.0
        self.sigma_ps = jitter_sigma_ps(det)
        self.lookback_ps = lookback_ps(det) + int(_JITTER_CLIP * self.sigma_ps) + 1
        self.channel_numbers = np.array(
            [cfg.channels.h, cfg.channels.v, cfg.channels.d, cfg.channels.a], dtype=np.uint8
        )
        self.hwp_history: list[tuple[float, float, float]] = []
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
        best, best_dist = 0.0, math.inf
        for t0, t1, deg in reversed(self.hwp_history):
            if t0 <= t < t1:
                return deg
            dist = t0 - t if t < t0 else t - t1
            if dist < best_dist:
                best, best_dist = deg, dist
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
        self._background_cache: OrderedDict[
            tuple[int, int], tuple[I64, I64, npt.NDArray[np.bool_], F64] | None
        ] = OrderedDict()

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

    def record_hwp(self, station: str, t0: float, t1: float, hwp_deg: float) -> None:
        """Report a station's actual HWP reading over [t0, t1) (detections() does this too)."""
        hist = self._station(station).hwp_history
        hist.append((t0, t1, float(hwp_deg)))
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

    def _analyzer_angle(self, st: _Station, t_detect: float, hwp_deg: float) -> float:
        """Body-frame angle of the H/D analyzer reference (deg): -θ + 2(φ - hwp_zero)."""
        return -st.geo.theta_deg(t_detect) + 2.0 * (hwp_deg - st.cfg.hwp_zero_deg)

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
        self.record_hwp(station, t0, t1, hwp_deg)
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
        t0_ps, t1_ps = _to_ps(t0), _to_ps(t1)
        base_ps = t0_ps - st.lookback_ps
        coupling = self._coupling(st, 0.5 * (t0 + t1), pointing)
        keys: list[I64] = []
        ap_keys: list[I64] = []
        ap_delays: list[F64] = []
        self._signal(st, base_ps, t1_ps, coupling, hwp_deg, keys, ap_keys, ap_delays)
        self._background(st, base_ps, t1_ps, keys, ap_keys, ap_delays)
        det = st.cfg.detectors
        events = apply_dead_time_and_afterpulses(
            _cat(keys), _cat(ap_keys), np.concatenate([np.empty(0), *ap_delays]), det
        )
        t_rel = events & TIME_MASK
        ch_idx = (events >> CHANNEL_SHIFT).astype(np.intp)
        keep = (t_rel >= t0_ps - base_ps) & (t_rel < t1_ps - base_ps)
        if channels_enabled is not None:
            enabled = np.array([int(c) in channels_enabled for c in st.channel_numbers])
            keep &= enabled[ch_idx]
        t_rel = t_rel[keep]
        chans = st.channel_numbers[ch_idx[keep]]
        pps_t, pps_ch = self._pps(st, t0, t1, base_ps, channels_enabled)
        # The survivors are channel-major runs, each time-sorted: a stable (merging) sort is
        # ~2x faster than quicksort on such runs.
        merged = np.sort(
            np.concatenate([(t_rel << 8) | chans.astype(np.int64), (pps_t << 8) | pps_ch]),
            kind="stable",
        )
        t_rel = merged >> 8
        chans = (merged & 0xFF).astype(np.uint8)
        return self._to_tagger(st, base_ps, t_rel), chans

    def _signal(
        self,
        st: _Station,
        base_ps: int,
        t1_ps: int,
        coupling: float,
        hwp_deg: float,
        keys: list[I64],
        ap_keys: list[I64],
        ap_delays: list[F64],
    ) -> None:
        cfg = self.config
        det = st.cfg.detectors
        w0, w1 = base_ps / PS, t1_ps / PS
        margin = _EMIT_MARGIN_S + _JITTER_CLIP * st.sigma_ps / PS
        k_lo = emission.slice_of(w0 - st.geo.tof(w0) - margin)
        k_hi = emission.slice_of(w1 - st.geo.tof(w1) + margin)
        accept = coupling * st.eff / st.eff_max
        # accept_uniform(bits) < accept[c], in integers: the uniform is x / 2^26 with x the
        # 26-bit field, and x / 2^26 < a  <=>  x < ceil(a 2^26) exactly (x integer).
        accept_x = np.ceil(np.minimum(accept, 1.0) * (1 << 26)).astype(np.uint64)
        first = self._stations[0]
        state, vis = cfg.source.state, cfg.source.visibility
        for k in range(k_lo, k_hi + 1):
            p = self._slice_p(k)
            if p[st.index] <= 0.0:
                continue
            draws = self._draws(k, st.index, p)
            n = draws.t_emit.size
            if n == 0:
                continue
            t_start = k * SLICE_S
            tof = st.geo.tof_cubic(t_start)
            t_det_mid = t_start + 0.5 * SLICE_S + tof[0]
            bits = draws.bits
            # Channel index 2·arm + minus; "minus" is outcome_uniform >= P(+). At P(+) = 1/2
            # that is the top bit of the 26-bit outcome field (bit 26): exact, no floats.
            ch_idx = (bits >> np.uint64(26)) & np.uint64(1)
            if st.passive:
                ch_idx |= (bits & np.uint64(1)) << np.uint64(1)
            if st.index == 1 and draws.n_both:
                nb = draws.n_both
                p_plus = self._conditional_plus(
                    st, first, draws, t_start, t_det_mid, hwp_deg, state, vis
                )
                minus = emission.outcome_uniform(bits[:nb]) >= p_plus
                ch_idx[:nb] = (ch_idx[:nb] & np.uint64(2)) | minus.astype(np.uint64)
            kept = ((bits >> np.uint64(27)) & _MASK26) < accept_x[ch_idx]
            u = draws.t_emit[kept]
            ch_k = ch_idx[kept].astype(np.int64)
            m = u.size
            if m == 0:
                continue
            rng = generator(self.seed, Stream.LOCAL, k, st.index)
            jitter = rng.standard_normal(m)
            np.clip(jitter, -_JITTER_CLIP, _JITTER_CLIP, out=jitter)
            jitter *= st.sigma_ps
            # (k Δ - base) + (u + τ(u)) 1e12 + jitter, τ the cubic light time, in place.
            t_f = u * tof[3]
            t_f += tof[2]
            t_f *= u
            t_f += tof[1]
            t_f *= u
            t_f += tof[0]
            t_f += u
            t_f *= 1e12
            t_f += float(k * SLICE_PS - base_ps)
            t_f += jitter
            t_rel = np.rint(t_f, out=t_f).astype(np.int64)
            in_window = (t_rel >= 0) & (t_rel < t1_ps - base_ps)
            key = (ch_k << CHANNEL_SHIFT) | t_rel
            keys.append(key[in_window])
            self._flag_afterpulses(rng, key, in_window, det, ap_keys, ap_delays)

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
        a_ref = self._analyzer_angle(first, t_first, first.hwp_at(t_first))
        b_ref = self._analyzer_angle(st, t_det_mid, hwp_deg)
        fbits = draws.first_bits
        a_arm = emission.arm_of(fbits) if first.passive else np.zeros(nb, np.uint8)
        b_arm = emission.arm_of(draws.bits[:nb]) if st.passive else np.zeros(nb, np.uint8)
        x_a = np.where(emission.outcome_uniform(fbits) < 0.5, 1.0, -1.0)
        a_deg = a_ref + 45.0 * a_arm.astype(np.float64)
        b_deg = b_ref + 45.0 * b_arm.astype(np.float64)
        e = emission.correlation(state, a_deg, b_deg)
        out: F64 = 0.5 * (1.0 + vis * x_a * e)
        return out

    def _background(
        self,
        st: _Station,
        base_ps: int,
        t1_ps: int,
        keys: list[I64],
        ap_keys: list[I64],
        ap_delays: list[F64],
    ) -> None:
        det = st.cfg.detectors
        j_lo, j_hi = base_ps // SLICE_PS, (t1_ps - 1) // SLICE_PS
        for j in range(j_lo, j_hi + 1):
            block = self._background_block(st, j, det)
            if block is None:
                continue
            offset, ch, flagged, delays = block
            t_rel = (j * SLICE_PS - base_ps) + offset
            in_window = (t_rel >= 0) & (t_rel < t1_ps - base_ps)
            key = (ch << CHANNEL_SHIFT) | t_rel
            keys.append(key[in_window])
            if delays.size:
                sel = in_window[flagged]
                ap_keys.append(key[flagged][sel])
                ap_delays.append(delays[sel])

    def _background_block(
        self, st: _Station, j: int, det: DetectorConfig
    ) -> tuple[I64, I64, npt.NDArray[np.bool_], F64] | None:
        """Raw background of detection block j: offsets (ps), channel indices, afterpulse
        flags and delays, drawn in that order from the block's own stream (cached: a call
        window usually overlaps the block of the previous call)."""
        cache_key = (st.index, j)
        if cache_key in self._background_cache:
            return self._background_cache[cache_key]
        rates = self._background_rates(st, (j + 0.5) * SLICE_S)
        rng = generator(self.seed, Stream.BACKGROUND, j, st.index)
        counts = rng.poisson(rates * SLICE_S)
        n = int(counts.sum())
        block: tuple[I64, I64, npt.NDArray[np.bool_], F64] | None = None
        if n:
            offset = (rng.random(n) * SLICE_PS).astype(np.int64)
            ch = np.repeat(np.arange(4, dtype=np.int64), counts)
            flagged = rng.random(n) < det.afterpulse_prob
            n_ap = int(np.count_nonzero(flagged))
            delays = afterpulse_delays_ps(rng, n_ap, det) if n_ap else np.empty(0)
            block = (offset, ch, flagged, delays)
        self._background_cache[cache_key] = block
        if len(self._background_cache) > _DRAW_CACHE:
            self._background_cache.popitem(last=False)
        return block

    @staticmethod
    def _flag_afterpulses(
        rng: np.random.Generator,
        key: I64,
        in_window: npt.NDArray[np.bool_],
        det: DetectorConfig,
        ap_keys: list[I64],
        ap_delays: list[F64],
    ) -> None:
        """Flag raw events that will afterpulse if they survive dead time.

        Flags and delays are drawn for *all* raw events of the slice, before the window cut,
        so that they do not depend on where the caller's window boundaries fall.
        """
        flagged = rng.random(key.size) < det.afterpulse_prob
        n_ap = int(np.count_nonzero(flagged))
        if n_ap == 0:
            return
        delays = afterpulse_delays_ps(rng, n_ap, det)
        sel = in_window[flagged]
        ap_keys.append(key[flagged][sel])
        ap_delays.append(delays[sel])

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
        offset = base_ps - _to_ps(self.config.tagger_epoch)
        if not -(2**62) < offset < 2**62:
            raise ValueError(
                f"time {base_ps / PS:.0f} is {offset / PS / 86400:.0f} days from the tagger "
                "epoch; int64 ps covers ±106 days: set [world] tagger_epoch_utc near the run"
            )
        err = st.clock.error_ps((offset + t_rel) / PS)
        out: I64 = t_rel + offset + np.rint(err).astype(np.int64)
        return out

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
        return {
            "az_deg": az,
            "el_deg": el,
            "refraction_deg": refraction,
            "apparent_el_deg": el + refraction,
            "range_m": rng,
            "tof_s": st.geo.tof(t),
            "transmittance": self._link_efficiency(st, t),
            "airmass": link.kasten_young_airmass(el),
            "theta_deg": st.geo.theta_deg(t),
            "hwp_compensation_deg": st.geo.theta_deg(t) / 2.0 + st.cfg.hwp_zero_deg,
            "sun_alt_deg": sun_alt,
            "moon_alt_deg": moon_alt,
            "moon_illumination": illum,
            "clock_error_s": float(st.clock.error_ps(np.array([t_ps / PS]))[0]) / PS,
            "visible": float(el >= st.cfg.min_elevation_deg),
        }


def _cat(parts: list[I64]) -> I64:
    out: I64 = np.concatenate([np.empty(0, np.int64), *parts])
    return out
