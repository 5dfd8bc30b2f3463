"""Low-precision Sun and Moon directions from a station (vectorized, no ephemeris files).

Formulas: *Astronomical Almanac* "low-precision" series (section C for the Sun, D for the
Moon), as reprinted in Meeus and in Montenbruck & Pfleger. Stated accuracies:

- Sun: 0.01° in ecliptic longitude (1950–2050); parallax (8.8″) applied anyway;
- Moon: ~0.3° in longitude, ~0.2° in latitude; topocentric parallax (up to ~1°) applied
  exactly from the series' distance (horizontal parallax).

That is ample for a 30° Sun and ~10° Moon exclusion when the model error is added to the
radius (:data:`SUN_MODEL_ERROR_DEG`, :data:`MOON_MODEL_ERROR_DEG` — the safety gate does).
Directions are of-date (mean equinox); the equinox difference to GMST's frame and nutation
(< 20″) are far below those error bars. Validated against JPL DE421 in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from station.tracking.earth import EarthOrientation, default_eop, gmst_at
from station.tracking.site import Site

F64 = npt.NDArray[np.float64]

AU_KM = 149597870.7
EARTH_RADIUS_KM = 6378.137
SUN_MODEL_ERROR_DEG = 0.02  #: conservative bound of the Sun series (deg)
MOON_MODEL_ERROR_DEG = 0.5  #: conservative bound of the Moon series incl. parallax (deg)

_D = math.pi / 180.0


@dataclass(frozen=True)
class BodyAltAz:
    """Topocentric azimuth/elevation (deg) of a body at times ``t_s``; elevation geometric."""

    t_s: F64
    az_deg: F64
    el_deg: F64


def _jd2000(t_s: F64) -> F64:
    # TT − UTC ≈ 69 s in this era; 69 s of Sun motion is 0.0008°, of Moon motion 0.01°
    out: F64 = (t_s + 69.184) / 86400.0 + 2440587.5 - 2451545.0
    return out


def sun_ecliptic(t_s: F64) -> tuple[F64, F64, F64]:
    """(longitude rad, latitude rad, distance km) of the Sun, mean equinox of date."""
    n = _jd2000(t_s)
    mean_lon = (280.460 + 0.9856474 * n) * _D
    g = (357.528 + 0.9856003 * n) * _D
    lam = mean_lon + (1.915 * np.sin(g) + 0.020 * np.sin(2 * g)) * _D
    dist = (1.00014 - 0.01671 * np.cos(g) - 0.00014 * np.cos(2 * g)) * AU_KM
    return lam, np.zeros_like(lam), dist


def moon_ecliptic(t_s: F64) -> tuple[F64, F64, F64]:
    """(longitude rad, latitude rad, distance km) of the Moon, mean equinox of date."""
    tc = _jd2000(t_s) / 36525.0

    def s(a: float, b: float) -> F64:
        out: F64 = np.sin((a + b * tc) * _D)
        return out

    def c(a: float, b: float) -> F64:
        out: F64 = np.cos((a + b * tc) * _D)
        return out

    lam = 218.32 + 481267.881 * tc
    lam = lam + 6.29 * s(135.0, 477198.87) - 1.27 * s(259.3, -413335.36)
    lam = lam + 0.66 * s(235.7, 890534.22) + 0.21 * s(269.9, 954397.74)
    lam = lam - 0.19 * s(357.5, 35999.05) - 0.11 * s(186.5, 966404.03)
    beta = 5.13 * s(93.3, 483202.02) + 0.28 * s(228.2, 960400.89)
    beta = beta - 0.28 * s(318.3, 6003.15) - 0.17 * s(217.6, -407332.21)
    hp = 0.9508 + 0.0518 * c(135.0, 477198.87) + 0.0095 * c(259.3, -413335.36)
    hp = hp + 0.0078 * c(235.7, 890534.22) + 0.0028 * c(269.9, 954397.74)
    dist = EARTH_RADIUS_KM / np.sin(hp * _D)
    return lam * _D, beta * _D, dist


def _topocentric(
    t_s: F64,
    ecl: tuple[F64, F64, F64],
    site: Site,
    eop: EarthOrientation,
) -> BodyAltAz:
    lam, beta, dist = ecl
    eps = (23.439 - 0.0000004 * _jd2000(t_s)) * _D
    x = dist * np.cos(beta) * np.cos(lam)
    y = dist * np.cos(beta) * np.sin(lam)
    z = dist * np.sin(beta)
    # ecliptic → equator of date, then rotate by GMST into the Earth-fixed frame
    ye = y * np.cos(eps) - z * np.sin(eps)
    ze = y * np.sin(eps) + z * np.cos(eps)
    theta = gmst_at(t_s, eop)
    ct, st = np.cos(theta), np.sin(theta)
    fixed = np.column_stack((ct * x + st * ye, -st * x + ct * ye, ze))
    rho = fixed - site.itrs_km
    e, n, u = (rho @ site.enu.T).T
    az = np.degrees(np.arctan2(e, n)) % 360.0
    el = np.degrees(np.arctan2(u, np.hypot(e, n)))
    return BodyAltAz(t_s, az, el)


def sun_altaz(t_s: F64, site: Site, eop: EarthOrientation | None = None) -> BodyAltAz:
    """Topocentric geometric az/el of the Sun (deg) at POSIX UTC times."""
    t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
    return _topocentric(t, sun_ecliptic(t), site, default_eop() if eop is None else eop)


def moon_altaz(t_s: F64, site: Site, eop: EarthOrientation | None = None) -> BodyAltAz:
    """Topocentric geometric az/el of the Moon (deg) at POSIX UTC times."""
    t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
    return _topocentric(t, moon_ecliptic(t), site, default_eop() if eop is None else eop)


def separation_deg(az1: F64, el1: F64, az2: F64, el2: F64) -> F64:
    """Great-circle angle (deg) between directions, elementwise (haversine; stable)."""
    a1, e1, a2, e2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (az1, el1, az2, el2))
    h = np.sin((e2 - e1) / 2) ** 2 + np.cos(e1) * np.cos(e2) * np.sin((a2 - a1) / 2) ** 2
    out: F64 = np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))
    return out
