"""Fast topocentric look angles for a satellite: SGP4 (vectorized) + numpy frame rotations.

Pipeline for N times at once (all numpy, no Python loop over samples):

1. ``Satrec.sgp4_array`` → TEME position/velocity (km, km/s) at UTC Julian dates;
2. TEME → ITRS by GMST82(UT1) and polar motion (:mod:`station.tracking.earth`);
3. topocentric vector ρ = r_sat − r_site in the local East/North/Up frame →
   azimuth, elevation, range, range rate and the az/el rates (analytic, from ρ̇);
4. optional *apparent* corrections, in this order:
   - light time: the light reaching the station at t left the satellite at t − |ρ|/c;
     in the (quasi-inertial) TEME frame the satellite was at r(t−τ) ≈ r(t) − v·τ, and the
     station is where it is at t, so the Earth-fixed vector is R(t)·r_TEME(t−τ) − r_site
     (τ ≈ 2–6 ms; the correction is v·τ ≈ 15–40 m, i.e. 5–10″);
   - diurnal aberration: the station moves at ω×r_site (≤ 0.46 km/s), shifting the
     apparent direction by v⊥/c ≤ 0.32″ towards the east;
   - refraction (Sæmundsson) with the site's pressure and temperature.

The geometric result (no light time, no aberration, no refraction) is what the tests
compare against skyfield's ``(sat - topos).at(t).altaz()``: skyfield computes the same
geometry through the full IAU 2000A precession–nutation chain, which cancels for SGP4's
TEME frame, so the two agree to milli-arcseconds when they use the same UT1 and pole.

The uplink point-ahead: a beacon fired at t reaches the satellite at t + τ, so it must
aim at r_TEME(t+τ) (with the opposite aberration), ~2v⊥/c ≈ 50 µrad away from the
apparent downlink direction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sgp4.api import Satrec

from station.tracking.earth import (
    JD_UNIX_EPOCH,
    OMEGA_EARTH,
    EarthOrientation,
    TemeToItrs,
    default_eop,
)
from station.tracking.refraction import saemundsson_deg
from station.tracking.site import Site

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
C_KM_S = 299792.458  #: speed of light (km/s)
_WARNED: set[str] = set()  # EOP tables already reported as not covering the times


class PropagationError(ValueError):
    """SGP4 reported an error (decayed orbit, eccentricity out of range, ...) at some times."""


@dataclass(frozen=True)
class LookAngles:
    """Topocentric pointing for a series of times.

    ``t_s`` POSIX seconds UTC; ``az_deg`` in [0, 360) from north through east; ``el_deg``
    above the horizon (apparent if refraction was applied); ``range_km`` slant range;
    ``range_rate_km_s`` positive when receding; rates in deg/s of the same az/el.
    ``itrs_km`` is the station→satellite vector in the Earth-fixed frame (N, 3) and
    ``sat_itrs_km``/``sat_vel_itrs_km_s`` the satellite state in that frame.
    """

    t_s: F64
    az_deg: F64
    el_deg: F64
    range_km: F64
    range_rate_km_s: F64
    az_rate_deg_s: F64
    el_rate_deg_s: F64
    los_itrs_km: F64
    sat_itrs_km: F64
    sat_vel_itrs_km_s: F64

    def __len__(self) -> int:
        return len(self.t_s)


def propagate_teme(sat: Satrec, t_s: F64, *, knot_step_s: float = 2.0) -> tuple[F64, F64]:
    """SGP4 TEME position (km) and velocity (km/s) at POSIX UTC times (N,) → (N,3), (N,3).

    Dense requests (more samples than knots every ``knot_step_s``) run SGP4 only on the knots
    and fill in by cubic Hermite interpolation from the knot positions and velocities. The
    interpolation error is bounded by |r⁗|·h⁴/384 with |r⁗| ≈ r·n⁴ ≈ 1e-8 km/s⁴ in LEO:
    ~0.5 µm for h = 2 s, far below SGP4's own metres. ``knot_step_s=0`` disables it.
    """
    t = np.asarray(t_s, dtype=np.float64)
    if knot_step_s > 0 and len(t) > 1:
        lo, hi = float(t.min()), float(t.max())
        n_knots = math.ceil((hi - lo) / knot_step_s) + 1
        if 2 * n_knots < len(t):
            knots: F64 = lo + np.arange(n_knots + 1, dtype=np.float64) * knot_step_s
            rk, vk = _sgp4(sat, knots)
            return _hermite(knots, rk, vk, t, knot_step_s)
    return _sgp4(sat, t)


def _sgp4(sat: Satrec, t: F64) -> tuple[F64, F64]:
    days = np.floor(t / 86400.0)
    jd = JD_UNIX_EPOCH + days
    fr = (t - days * 86400.0) / 86400.0
    err, r, v = sat.sgp4_array(jd, fr)
    if np.any(err):
        bad = int(np.flatnonzero(err)[0])
        raise PropagationError(
            f"SGP4 error code {int(err[bad])} for NORAD {sat.satnum} at POSIX {t[bad]:.1f} "
            "(1: eccentricity, 2: mean motion, 4: semi-latus rectum, 6: decayed); "
            "the elements cannot be propagated to this time"
        )
    return np.asarray(r, dtype=np.float64), np.asarray(v, dtype=np.float64)


def _hermite(knots: F64, rk: F64, vk: F64, t: F64, h: float) -> tuple[F64, F64]:
    """Cubic Hermite interpolation of positions (and its derivative for velocities).

    Per knot interval the cubic is p0 + s·(m0 + s·(c2 + s·c3)) with s ∈ [0, 1), m = v·h;
    the coefficients are formed once per knot and evaluated by Horner's rule per sample.
    """
    m = vk * h
    p0, p1, m0, m1 = rk[:-1], rk[1:], m[:-1], m[1:]
    c2 = 3.0 * (p1 - p0) - 2.0 * m0 - m1
    c3 = 2.0 * (p0 - p1) + m0 + m1
    i = np.clip(((t - knots[0]) // h).astype(np.intp), 0, len(knots) - 2)
    s = ((t - knots[i]) / h)[:, None]
    a2, a3, am = c2[i], c3[i], m0[i]
    pos = rk[i] + s * (am + s * (a2 + s * a3))
    vel = (am + s * (2.0 * a2 + 3.0 * s * a3)) / h
    return pos, vel


def _angles(t_s: F64, rho: F64, rho_dot: F64, site: Site, sat: F64, sat_v: F64) -> LookAngles:
    enu = site.enu
    e, n, u = (rho @ enu.T).T
    ed, nd, ud = (rho_dot @ enu.T).T
    hor2 = e * e + n * n
    hor = np.sqrt(hor2)
    rng = np.sqrt(hor2 + u * u)
    az = np.degrees(np.arctan2(e, n)) % 360.0
    el = np.degrees(np.arctan2(u, hor))
    rr = (e * ed + n * nd + u * ud) / rng
    with np.errstate(divide="ignore", invalid="ignore"):
        az_rate = np.degrees((n * ed - e * nd) / hor2)
        el_rate = np.degrees((hor * ud - u * (e * ed + n * nd) / hor) / (rng * rng))
    return LookAngles(t_s, az, el, rng, rr, az_rate, el_rate, rho, sat, sat_v)


def look_angles(
    sat: Satrec,
    site: Site,
    t_s: F64,
    *,
    eop: EarthOrientation | None = None,
    apparent: bool = True,
    refraction: bool = True,
    polar_motion: bool = True,
) -> LookAngles:
    """Az/el/range/rates of ``sat`` from ``site`` at POSIX UTC times ``t_s`` (vectorized).

    ``apparent`` adds light time and diurnal aberration; ``refraction`` adds Sæmundsson
    refraction for the site's pressure/temperature (no effect when pressure is 0).
    """
    t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
    eop = default_eop() if eop is None else eop
    if not (eop.covers(float(t[0])) and eop.covers(float(t[-1]))) and eop.source not in _WARNED:
        _WARNED.add(eop.source)
        log.warning(
            "Earth-orientation table %s does not cover %s; UT1-UTC and the pole are held at "
            "the table's end (pointing error grows ~1 arcsec per week): update the IERS file",
            eop.source,
            datetime.fromtimestamp(float(t[0]), tz=UTC).date(),
        )
    r_teme, v_teme = propagate_teme(sat, t)
    rot = TemeToItrs(t, eop, polar_motion=polar_motion)
    r, v_rot, v = rot.state(r_teme, v_teme)
    site_km = site.itrs_km
    rho = r - site_km
    if apparent:
        # Light time: R(t)·r_TEME(t−τ) = r − τ·R(t)·v_TEME (rotation is linear). One
        # fixed-point step: a second would change τ by ρ̇/c·τ ~ 2e-5·τ, i.e. < 1 mm.
        tau = np.sqrt(np.einsum("ij,ij->i", rho, rho)) / C_KM_S
        rho = rho - v_rot * tau[:, None]
        rho = _aberrate(rho, site_km, +1.0)
    out = _angles(t, rho, v, site, r, v)
    if refraction and site.pressure_hpa > 0:
        el = out.el_deg + saemundsson_deg(out.el_deg, site.pressure_hpa, site.temperature_c)
        out = LookAngles(
            out.t_s,
            out.az_deg,
            el,
            out.range_km,
            out.range_rate_km_s,
            out.az_rate_deg_s,
            out.el_rate_deg_s,
            out.los_itrs_km,
            out.sat_itrs_km,
            out.sat_vel_itrs_km_s,
        )
    return out


def _aberrate(rho: F64, site_km: F64, sign: float) -> F64:
    """Shift directions ``rho`` for the station's rotation velocity ω×r (first order in v/c).

    ``sign`` +1 for received light (apparent direction tilts toward the velocity), −1 for a
    transmitted beam (it must be aimed against the velocity to leave in the right direction).
    """
    v_site = OMEGA_EARTH * np.array([-site_km[1], site_km[0], 0.0])
    beta = sign * v_site / C_KM_S
    d = np.sqrt(np.einsum("ij,ij->i", rho, rho))
    # ρ' = ρ + d·β − (ρ·β)·ρ/d: direction shifted by β⊥, length unchanged to O(β²)
    out: F64 = rho + d[:, None] * beta - ((rho @ beta) / d)[:, None] * rho
    return out


@dataclass(frozen=True)
class PointAhead:
    """Uplink aiming: transmit direction and its angle from the apparent downlink direction."""

    t_s: F64
    az_deg: F64  #: geometric (unrefracted) transmit azimuth, deg
    el_deg: F64  #: geometric (unrefracted) transmit elevation, deg
    angle_urad: F64  #: point-ahead angle (µrad)


def point_ahead(
    sat: Satrec,
    site: Site,
    t_s: F64,
    *,
    eop: EarthOrientation | None = None,
    polar_motion: bool = True,
) -> PointAhead:
    """Where a beacon fired at ``t_s`` must aim to meet the satellite (t + τ), and how far
    that is from where the satellite is seen (t − τ)."""
    t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
    eop = default_eop() if eop is None else eop
    r_teme, v_teme = propagate_teme(sat, t)
    rot = TemeToItrs(t, eop, polar_motion=polar_motion)
    r, v_rot = rot.rotate(r_teme), rot.rotate(v_teme)
    site_km = site.itrs_km
    seen = look_angles(sat, site, t, eop=eop, refraction=False, polar_motion=polar_motion)
    rho = r - site_km
    for _ in range(3):
        tau = np.linalg.norm(rho, axis=1) / C_KM_S
        rho = r + v_rot * tau[:, None] - site_km
    rho = _aberrate(rho, site_km, -1.0)
    enu = site.enu
    e, n, u = (rho @ enu.T).T
    az = np.degrees(np.arctan2(e, n)) % 360.0
    el = np.degrees(np.arctan2(u, np.hypot(e, n)))
    a = seen.los_itrs_km / seen.range_km[:, None]
    b = rho / np.linalg.norm(rho, axis=1)[:, None]
    angle = 2.0 * np.arctan2(np.linalg.norm(a - b, axis=1), np.linalg.norm(a + b, axis=1))
    return PointAhead(t, az, el, angle * 1e6)


def sample_times(start_s: float, stop_s: float, rate_hz: float) -> F64:
    """Uniform sample times from ``start_s`` to ``stop_s`` inclusive-ish at ``rate_hz``."""
    if rate_hz <= 0 or not math.isfinite(rate_hz):
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    n = max(2, math.floor((stop_s - start_s) * rate_hz) + 1)
    out: F64 = start_s + np.arange(n) / rate_hz
    return out
