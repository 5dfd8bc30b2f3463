"""Satellite-to-station geometry from skyfield at full precision, on a coarse grid.

skyfield's topocentric reduction (IAU 2000A nutation) runs at ~13 k points/s, far too slow
per photon, so each station's geometry is computed on a 1 s grid in 60 s blocks (cached)
and interpolated:

- the topocentric position (north, east, up) and the light time by cubic Hermite
  interpolation with the *exact* derivatives (skyfield velocities). The error of a cubic
  Hermite on a 1 s step is ≤ h⁴·max|f⁗|/384; for a 500 km LEO pass |r⁗| ≲ 0.1 m/s⁴, i.e.
  < 1 mm in range (< 3 fs of light time) and < 1e-7 deg in direction; the unit test
  ``test_interpolation_error`` measures it against direct skyfield evaluation.
- θ (polarization frame rotation) by Catmull-Rom cubic on the unwrapped angle; measured
  error < 1e-3 deg in the same test (θ moves at most ~1 deg/s near culmination).

Two directions are kept apart: :meth:`StationGeometry.az_el_range` is *geometric* (what the
link budget's air mass and the visibility threshold use), :meth:`StationGeometry.apparent_az_el`
adds atmospheric refraction (:mod:`sim_hardware.world.refraction`, with the station's
pressure and temperature): that is where a telescope must point, so the world measures the
mount's pointing error against it. Light-time and aberration corrections of the direction are
not applied (≲ 0.002 deg, far inside the receiver field of view). Light
time for a photon *emitted* at t: τ = |r_sta(t + τ) - r_sat(t)|/c in the GCRS (station
velocity included, two fixed-point iterations, sub-ps), plus the optical tropospheric delay at
the geometric elevation and the station's weather (Marini–Murray,
:mod:`sim_hardware.world.troposphere`; 5–30 ns at a 3200 m site), carried by every photon.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from skyfield.api import EarthSatellite, wgs84

from sim_hardware.world.config import SatelliteConfig, SourceConfig, StationConfig
from sim_hardware.world.polframe import frame_rotation_deg
from sim_hardware.world.refraction import refraction_deg
from sim_hardware.world.sky import Sky, posix_to_time
from sim_hardware.world.troposphere import marini_murray_m, marini_murray_rate_m

F64 = npt.NDArray[np.float64]
C_M_S = 299_792_458.0
BLOCK_S = 60  #: seconds per cached geometry block (grid step 1 s)
_MAX_CACHED_BLOCKS = 256


def hermite_coefficients(p0: F64, p1: F64, m0: F64, m1: F64) -> tuple[F64, F64, F64, F64]:
    """Cubic a + b s + c s² + d s³ on s ∈ [0, 1] through p0, p1 with slopes m0, m1."""
    return p0, m0, 3.0 * (p1 - p0) - 2.0 * m0 - m1, 2.0 * (p0 - p1) + m0 + m1


@dataclass(frozen=True)
class GeometryBlock:
    """Grid samples of one station's geometry at POSIX times ``start - 1 .. start + 61``."""

    start: int  #: POSIX second of grid index 1
    neu: F64  #: (3, n) satellite minus station, north/east/up (m)
    neu_vel: F64  #: (3, n) its time derivative (m/s)
    tof: F64  #: (n,) light time of a photon emitted at the grid time (s)
    tof_rate: F64  #: (n,) dτ/dt
    theta: F64  #: (n,) unwrapped frame rotation incl. optical train (deg)
    sun_alt_deg: float
    moon_alt_deg: float
    moon_illumination: float

    def cell(self, t: F64) -> tuple[npt.NDArray[np.intp], F64]:
        """Grid index j (so that t ∈ [t_j, t_j+1)) and fraction s ∈ [0, 1)."""
        rel = t - (self.start - 1)
        j = np.clip(np.floor(rel).astype(np.intp), 0, len(self.tof) - 2)
        return j, rel - j

    def cell_scalar(self, t: float) -> tuple[int, float]:
        """:meth:`cell` for one time, in plain floats (the per-call hot path)."""
        rel = t - (self.start - 1)
        j = min(max(math.floor(rel), 0), len(self.tof) - 2)
        return j, rel - j


class StationGeometry:
    """Cached, interpolated geometry of the satellite as seen from one station."""

    def __init__(
        self,
        sky: Sky,
        sat: EarthSatellite,
        station: StationConfig,
        sat_cfg: SatelliteConfig,
        source: SourceConfig,
    ) -> None:
        self._sky = sky
        self._sat = sat
        self._cfg = station
        self._sat_cfg = sat_cfg
        self._source = source
        self._topos = wgs84.latlon(station.latitude_deg, station.longitude_deg, station.altitude_m)
        self._pressure_hpa, self._temperature_c = station.weather()
        self._blocks: dict[int, GeometryBlock] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ blocks

    def block(self, t: float) -> GeometryBlock:
        """The cached block containing POSIX time ``t``."""
        b = math.floor(t / BLOCK_S)
        blk = self._blocks.get(b)
        if blk is None:
            blk = self._store(b, self._compute_block(b * BLOCK_S))
        return blk

    def prefetch(self, t0: float, t1: float) -> int:
        """Compute the blocks covering [t0, t1] that are not cached yet; returns how many.

        A block costs 5–15 ms of skyfield: computed on demand inside the rig's event loop it
        stalls every emulator of the plant for that long, once a minute of world time (at a
        10x warp, 0.1 s of clock in which no mount command is served). The rig calls this
        from a worker thread ahead of time instead.
        """
        done = 0
        for b in range(math.floor(t0 / BLOCK_S), math.floor(t1 / BLOCK_S) + 1):
            if b not in self._blocks:
                self._store(b, self._compute_block(b * BLOCK_S))
                done += 1
        return done

    def _store(self, b: int, blk: GeometryBlock) -> GeometryBlock:
        """Insert a computed block (thread-safe: :meth:`prefetch` runs in a worker thread)."""
        with self._lock:
            cached = self._blocks.get(b)
            if cached is not None:
                return cached
            while len(self._blocks) >= _MAX_CACHED_BLOCKS:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[b] = blk
            return blk

    def _compute_block(self, start: int) -> GeometryBlock:
        ts, eph = self._sky.ts, self._sky.eph
        grid = start + np.arange(-1.0, BLOCK_S + 2.0)
        t = posix_to_time(ts, grid)
        sat_at = self._sat.at(t)
        sta_at = self._topos.at(t)
        sat_pos, sat_vel = sat_at.position.m, sat_at.velocity.m_per_s
        sta_pos, sta_vel = sta_at.position.m, sta_at.velocity.m_per_s
        rel = (self._sat - self._topos).at(t)
        neu_q, neu_v = rel.frame_xyz_and_velocity(self._topos)
        neu, neu_vel = neu_q.m, neu_v.m_per_s
        # Light time for emission at the grid time, in the (quasi-inertial) GCRS.
        rho = sta_pos - sat_pos
        tau = np.linalg.norm(rho, axis=0) / C_M_S
        for _ in range(2):
            tau = np.linalg.norm(rho + sta_vel * tau, axis=0) / C_M_S
        tau_rate = np.sum(rho * (sta_vel - sat_vel), axis=0) / (np.linalg.norm(rho, axis=0) * C_M_S)
        # Tropospheric delay (m → s) at the geometric elevation, and its rate through dE/dt
        # (E = atan2(up, horizontal), differentiated analytically from the NEU velocity).
        horiz = np.hypot(neu[0], neu[1])
        horiz_rate = (neu[0] * neu_vel[0] + neu[1] * neu_vel[1]) / horiz
        el_deg = np.degrees(np.arctan2(neu[2], horiz))
        el_rate = np.degrees((horiz * neu_vel[2] - neu[2] * horiz_rate) / (horiz**2 + neu[2] ** 2))
        weather = {
            "pressure_hpa": self._pressure_hpa,
            "temperature_c": self._temperature_c,
            "latitude_deg": self._cfg.latitude_deg,
            "altitude_m": self._cfg.altitude_m,
        }
        tau = tau + marini_murray_m(el_deg, **weather) / C_M_S
        tau_rate = tau_rate + marini_murray_rate_m(el_deg, el_rate, **weather) / C_M_S
        # θ before the optical train: the train turns with the mount's actual axes, which
        # the world applies per slice (World._analyzer_angles), not with the sky direction
        theta = self._theta(t, neu, sat_pos, sat_vel)
        theta = np.degrees(np.unwrap(np.radians(2.0 * theta))) / 2.0  # unwrap mod 180
        sun_alt, moon_alt, moon_illum = self._sun_moon(start + BLOCK_S / 2.0, eph)
        return GeometryBlock(
            start, neu, neu_vel, tau, tau_rate, theta, sun_alt, moon_alt, moon_illum
        )

    def _theta(self, t: Any, neu: F64, sat_pos: F64, sat_vel: F64) -> F64:
        """θ before the optical train, from GCRS satellite vectors at skyfield times ``t``."""
        # skyfield's topocentric frame is (north, east, up): a *left-handed* axis order
        # (rotation_at has determinant -1), so cross products there would be mirrored.
        # Swap to east-north-up (right-handed) before any vector algebra.
        enu = [1, 0, 2]
        rot = self._topos.rotation_at(t)  # (3, 3, n): north/east/up = rot @ gcrs
        sat_pos_l = np.einsum("ijn,jn->in", rot, sat_pos)[enu]
        sat_vel_l = np.einsum("ijn,jn->in", rot, sat_vel)[enu]
        up = np.array([[0.0], [0.0], [1.0]])
        return frame_rotation_deg(
            neu[enu],
            sat_pos_l,
            sat_vel_l,
            up,
            attitude_law=self._sat_cfg.attitude_law,
            polarization_axis_deg=self._source.polarization_axis_deg,
        )

    def _sun_moon(self, t_posix: float, eph: Any) -> tuple[float, float, float]:
        from skyfield import almanac

        t = posix_to_time(self._sky.ts, t_posix)
        site = eph["earth"] + self._topos
        sun_alt = site.at(t).observe(eph["sun"]).apparent().altaz()[0].degrees
        moon_alt = site.at(t).observe(eph["moon"]).apparent().altaz()[0].degrees
        illum = almanac.fraction_illuminated(eph, "moon", t)
        return float(sun_alt), float(moon_alt), float(illum)

    # ------------------------------------------------------------------ interpolation

    def _neu_scalar(self, t: float) -> tuple[float, float, float]:
        blk = self.block(t)
        j, s = blk.cell_scalar(t)
        out = []
        for i in range(3):
            p0, p1 = float(blk.neu[i, j]), float(blk.neu[i, j + 1])
            m0, m1 = float(blk.neu_vel[i, j]), float(blk.neu_vel[i, j + 1])
            c = 3.0 * (p1 - p0) - 2.0 * m0 - m1
            d = 2.0 * (p0 - p1) + m0 + m1
            out.append(p0 + s * (m0 + s * (c + s * d)))
        return out[0], out[1], out[2]

    def neu(self, t: float) -> F64:
        """Satellite minus station, north/east/up metres, at POSIX ``t`` (Hermite)."""
        return np.array(self._neu_scalar(t))

    def az_el_range(self, t: float) -> tuple[float, float, float]:
        """Geometric azimuth, elevation (deg) and slant range (m) at POSIX ``t``."""
        north, east, up = self._neu_scalar(t)
        az = math.degrees(math.atan2(east, north)) % 360.0
        horizontal = math.hypot(north, east)
        el = math.degrees(math.atan2(up, horizontal))
        return az, el, math.hypot(horizontal, up)

    def refraction_deg(self, el_deg: float) -> float:
        """Refraction (deg) at geometric elevation ``el_deg`` for this station's weather."""
        return refraction_deg(el_deg, self._pressure_hpa, self._temperature_c)

    def apparent_az_el(self, t: float) -> tuple[float, float]:
        """Apparent (refracted) azimuth and elevation (deg) at POSIX ``t``."""
        az, el, _ = self.az_el_range(t)
        return az, el + self.refraction_deg(el)

    def tof_cubic(self, t0: float) -> tuple[float, float, float, float]:
        """Light time τ(t0 + u) = c0 + c1 u + c2 u² + c3 u³ (u in s) around emission ``t0``.

        Valid while t0 + u stays in the same 1 s grid cell (the emission slices never
        straddle one).
        """
        blk = self.block(t0)
        j, s0 = blk.cell_scalar(t0)
        a, b, c, d = (
            float(x)
            for x in hermite_coefficients(
                blk.tof[j], blk.tof[j + 1], blk.tof_rate[j], blk.tof_rate[j + 1]
            )
        )
        return (
            a + s0 * (b + s0 * (c + s0 * d)),
            b + s0 * (2.0 * c + 3.0 * d * s0),
            c + 3.0 * d * s0,
            d,
        )

    def tof(self, t_emit: float) -> float:
        """Light time (s) of a photon emitted at POSIX ``t_emit``."""
        return self.tof_cubic(t_emit)[0]

    def theta_deg(self, t: float) -> float:
        """Frame rotation θ (deg, folded into (-90, 90]) at POSIX ``t`` (Catmull-Rom)."""
        blk = self.block(t)
        j, s = blk.cell_scalar(t)
        j = min(max(j, 1), len(blk.theta) - 3)
        p0, p1, p2, p3 = blk.theta[j - 1 : j + 3]
        value = 0.5 * (
            2.0 * p1
            + (-p0 + p2) * s
            + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * s * s
            + (-p0 + 3.0 * p1 - 3.0 * p2 + p3) * s**3
        )
        return float(90.0 - (90.0 - value) % 180.0)

    def sun_moon(self, t: float) -> tuple[float, float, float]:
        """Sun altitude, Moon altitude (deg) and Moon illuminated fraction near ``t``."""
        blk = self.block(t)
        return blk.sun_alt_deg, blk.moon_alt_deg, blk.moon_illumination


def _az_el(neu: F64) -> tuple[F64, F64]:
    north, east, up = neu
    az = np.degrees(np.arctan2(east, north)) % 360.0
    el = np.degrees(np.arctan2(up, np.hypot(north, east)))
    return az, el
