"""Orbit prior: the differential time of flight of a photon pair to two stations, from the TLE.

Why: the clock-offset search between two stations' event streams looks for a coincidence
peak near ``t_B − t_A = δτ(t) + (clock offsets)``. δτ sweeps by milliseconds through a pass
(the ranges change by km/s), so without the prior the peak smears; with a prior good to
~100 ps the search only has to find the clocks' residual offset and drift.

Physics, for a pair emitted at t_e (POSIX UTC) and arriving at t_A, t_B::

    t_X = t_e + τ_X(t_e),   τ_X(t_e) = |r_X(t_e + τ_X) − r_sat(t_e)| / c + Δ_trop,X / c

- light time solved in the quasi-inertial TEME frame of SGP4 by fixed-point iteration: the
  satellite is where it was at emission and the station is where Earth's rotation (GMST82 at
  UT1, polar motion; :mod:`station.tracking.earth`) has carried it at reception. Both
  motions are ns-level: taking the satellite at reception instead of emission would move it
  by v·τ ≈ 7 km/s · 4 ms ≈ 28 m (up to ~90 ns), and the station turns by
  ω×r·τ ≈ 0.4 km/s · 4 ms ≈ 1.5 m during the flight (up to 5 ns, the Sagnac term);
- tropospheric delay at the geometric elevation and the site's pressure/temperature
  (Mendes–Pavlis + FCULa, :mod:`station.analysis.troposphere`); 5–30 ns at 3200 m.
- neglected: the gravitational (Shapiro) delay, 2GM/c³·ln((r₁+r₂+ρ)/(r₁+r₂−ρ)) ≈ 4 ps for
  LEO, and the ionosphere (optical: < 1 mm).

τ is computed on a 1 s grid and interpolated by a cubic spline (error ≲ h⁴·|τ⁗|/384 < 1 ps:
|ρ⁗| ≲ ρ̈·(v/ρ)² ≈ 0.02 m/s⁴ near culmination). The absolute accuracy is that of the TLE
(SGP4: ~1 km along track, i.e. a time error of ~0.15 s, which moves δτ by up to
~0.15 s · dδτ/dt ≈ 3 µs): the prior fixes the
*shape* of δτ(t) to ~100 ps, and the offset search absorbs the along-track bias as a slowly
varying offset. The world (sim_hardware) computes the same delays from skyfield and its own
troposphere model; tests/unit/station/analysis/test_analysis_orbitprior.py compares them.

Times in: float64 POSIX seconds (quantised to ±0.12 µs around 2021, which moves τ by < 3 ps
since |dτ/dt| < 2.5e-5); times out: float64 ps (small differences, never absolute times).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.interpolate import CubicSpline
from sgp4.api import WGS72, Satrec

from station.analysis.troposphere import slant_delay_m
from station.tracking.earth import EarthOrientation, default_eop, gmst_at, polar_motion_matrix
from station.tracking.ephemeris import look_angles, propagate_teme
from station.tracking.site import Site

F64 = npt.NDArray[np.float64]
C_M_S = 299_792_458.0
PS = 1e12
#: seconds of grid added before ``start`` and after ``stop`` (emission precedes arrival)
PAD_S = 3.0
_LIGHT_TIME_ITERATIONS = 4  # each shrinks the error by |ṙ|/c ~ 2e-5: 4 ms → 80 ns → 2 ps → 0


@dataclass(frozen=True)
class OrbitPrior:
    """Interpolated light time (vacuum + troposphere) from one satellite to two stations.

    ``names`` are the two stations (A, B); ``t0`` the POSIX second of the grid origin; the
    splines take seconds since ``t0`` and return τ in seconds.
    """

    names: tuple[str, str]
    t0: float
    span_s: float
    _tau: dict[str, CubicSpline] = field(repr=False, compare=False)
    _trop_s: dict[str, CubicSpline] = field(repr=False, compare=False)

    def _check(self, station: str, u: F64) -> CubicSpline:
        if station not in self._tau:
            raise KeyError(f"unknown station {station!r}; the prior covers {self.names}")
        if u.size and (float(u.min()) < 0.0 or float(u.max()) > self.span_s):
            raise ValueError(
                f"times {self.t0 + float(u.min()):.3f}..{self.t0 + float(u.max()):.3f} POSIX "
                f"leave the prior's span {self.t0:.0f}..{self.t0 + self.span_s:.0f}: build the "
                "prior over the whole pass"
            )
        return self._tau[station]

    def tof_ps(self, station: str, t_emit_posix: F64) -> F64:
        """Light time (ps, vacuum + troposphere) of photons emitted at ``t_emit_posix``."""
        u = np.asarray(t_emit_posix, dtype=np.float64) - self.t0
        out: F64 = self._check(station, u)(u) * PS
        return out

    def troposphere_ps(self, station: str, t_emit_posix: F64) -> F64:
        """The tropospheric part of :meth:`tof_ps` alone (ps), for reports and tests."""
        u = np.asarray(t_emit_posix, dtype=np.float64) - self.t0
        self._check(station, u)
        out: F64 = self._trop_s[station](u) * PS
        return out

    def emission_posix(self, t_arrival_a_posix: F64) -> F64:
        """Emission time t_e of the photons that reached station A at ``t_arrival_a_posix``:
        the fixed point of t_e = t_A − τ_A(t_e) (contraction |dτ/dt| < 2.5e-5)."""
        u_a = np.asarray(t_arrival_a_posix, dtype=np.float64) - self.t0
        spline = self._check(self.names[0], u_a)
        u_e = u_a - spline(u_a)
        for _ in range(2):  # 4 ms·2.5e-5 = 100 ns → 2.5 ps → 0
            u_e = u_a - spline(u_e)
        out: F64 = u_e + self.t0
        return out

    def differential_ps(self, t_arrival_a_posix: F64) -> F64:
        """t_B − t_A (ps) for the pair whose photon reached A at ``t_arrival_a_posix``."""
        u_e = self.emission_posix(t_arrival_a_posix) - self.t0
        a, b = (self._check(name, u_e) for name in self.names)
        out: F64 = (b(u_e) - a(u_e)) * PS
        return out


def site_teme_m(site: Site, t_s: F64, eop: EarthOrientation, pm: F64) -> F64:
    """The site's position (m) in TEME at POSIX times ``t_s`` → (N, 3).

    Inverse of :class:`station.tracking.earth.TemeToItrs`: r_ITRS = W·R3(GMST)·r_TEME, so
    r_TEME = R3(GMST)ᵀ·Wᵀ·r_ITRS (W the polar-motion matrix ``pm``).
    """
    pef = pm.T @ (site.itrs_km * 1e3)
    theta = gmst_at(t_s, eop)
    c, s = np.cos(theta), np.sin(theta)
    x, y = c * pef[0] - s * pef[1], s * pef[0] + c * pef[1]
    out: F64 = np.column_stack((x, y, np.full_like(c, pef[2])))
    return out


def light_time_s(
    sat: Satrec, site: Site, t_emit: F64, eop: EarthOrientation, *, polar_motion: bool = True
) -> F64:
    """Vacuum light time (s) from the satellite at ``t_emit`` to the moving site, (N,)."""
    r_sat, _ = propagate_teme(sat, t_emit, knot_step_s=0.0)
    r_sat = r_sat * 1e3
    pm = np.eye(3)
    if polar_motion:
        _, xp, yp = eop.at(float(t_emit[len(t_emit) // 2]))
        pm = polar_motion_matrix(float(xp), float(yp))
    tau = np.zeros_like(t_emit)
    for _ in range(_LIGHT_TIME_ITERATIONS):
        rho = site_teme_m(site, t_emit + tau, eop, pm) - r_sat
        tau = np.sqrt(np.einsum("ij,ij->i", rho, rho)) / C_M_S
    return tau


def troposphere_s(
    sat: Satrec, site: Site, t: F64, eop: EarthOrientation, *, polar_motion: bool = True
) -> F64:
    """Tropospheric delay (s) at the geometric elevation of the satellite at times ``t``."""
    el = look_angles(
        sat, site, t, eop=eop, apparent=False, refraction=False, polar_motion=polar_motion
    ).el_deg
    delay = slant_delay_m(
        el,
        pressure_hpa=site.pressure_hpa,
        temperature_c=site.temperature_c,
        latitude_deg=site.latitude_deg,
        altitude_m=site.altitude_m,
    )
    out: F64 = delay / C_M_S
    return out


def orbit_prior(
    tle: tuple[str, str],
    site_a: Site,
    site_b: Site,
    *,
    start_posix: float,
    stop_posix: float,
    step_s: float = 1.0,
    eop: EarthOrientation | None = None,
    polar_motion: bool = True,
) -> OrbitPrior:
    """Build the prior for pairs arriving between ``start_posix`` and ``stop_posix``.

    ``tle`` the two element lines (as recorded in the bundle manifest); the sites carry the
    WGS84 position and the weather (``pressure_hpa`` 0 means no troposphere).
    ``polar_motion`` False drops the pole offset (~0.3″, i.e. ~10 m of station position and
    up to ~45 ns of light time, docs/analysis-timing.md): only to compare with a model Earth
    that has none.
    """
    if site_a.name == site_b.name:
        raise ValueError(f"the two sites must differ, got {site_a.name!r} twice")
    if not stop_posix > start_posix:
        raise ValueError(f"stop {stop_posix} must be after start {start_posix}")
    eop = default_eop() if eop is None else eop
    sat = Satrec.twoline2rv(tle[0], tle[1], WGS72)
    t0 = math.floor(start_posix - PAD_S)
    n = math.ceil((stop_posix + PAD_S - t0) / step_s) + 1
    u = np.arange(n, dtype=np.float64) * step_s
    grid = t0 + u
    tau: dict[str, CubicSpline] = {}
    trop: dict[str, CubicSpline] = {}
    for site in (site_a, site_b):
        t_trop = troposphere_s(sat, site, grid, eop, polar_motion=polar_motion)
        t_vac = light_time_s(sat, site, grid, eop, polar_motion=polar_motion)
        tau[site.name] = CubicSpline(u, t_vac + t_trop)
        trop[site.name] = CubicSpline(u, t_trop)
    return OrbitPrior((site_a.name, site_b.name), float(t0), float(u[-1]), tau, trop)
