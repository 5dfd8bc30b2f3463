"""Earth orientation: UT1 and polar motion from IERS data, and the TEME → ITRS rotation.

SGP4 returns positions in TEME (true equator, mean equinox). The Earth-fixed frame follows
from one rotation about z by Greenwich Mean Sidereal Time (the IAU 1982 expression used with
SGP4, Vallado et al. 2006, AIAA 2006-6753 Appendix C) evaluated at UT1, then polar motion.
Precession and nutation do not appear: TEME is defined so that they cancel.

Why UT1 and polar motion matter at 1 arcsec: the ground turns 0.46 km/s at the equator, so
a UT1 error of 5 ms moves the satellite by ~2.4 m relative to the station — 1 arcsec at 500
km range; polar motion (~0.3 arcsec ≈ 10 m at the satellite's radius) is worth ~4 arcsec.
Both come from the IERS ``finals2000A.all`` file (Bulletin A columns); the copy shipped
with the ``skyfield-data`` package is used by default (read here with our own parser, not
through skyfield, so the reference comparison in the tests stays independent).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from drivers.errors import ConfigError

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

JD_UNIX_EPOCH = 2440587.5  #: Julian date of 1970-01-01T00:00 UTC
MJD_UNIX_EPOCH = 40587.0  #: modified Julian date of the POSIX epoch
ARCSEC = math.pi / 180.0 / 3600.0  #: one arcsecond in radians
#: Earth rotation rate (rad/s), IERS conventions; enough for velocity transforms
OMEGA_EARTH = 7.292115146706979e-5

# WGS84 ellipsoid (the station coordinates are WGS84 geodetic)
WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563


@dataclass(frozen=True)
class EarthOrientation:
    """Daily UT1−UTC (s) and pole coordinates x, y (arcsec), tabulated by UTC MJD."""

    mjd: F64
    dut1_s: F64
    xp_arcsec: F64
    yp_arcsec: F64
    source: str = "zero"

    @classmethod
    def zero(cls) -> EarthOrientation:
        """No Earth-orientation data: UT1 = UTC and no polar motion (error up to ~0.9 s!)."""
        z = np.zeros(2)
        return cls(np.array([0.0, 1e6]), z, z, z, "zero")

    def __post_init__(self) -> None:
        # UT1−UTC with the leap-second steps (+1 s each) removed: continuous, so it can be
        # interpolated; the steps are added back per sample
        steps = np.cumsum(np.concatenate([[0.0], np.round(np.diff(self.dut1_s))]))
        object.__setattr__(self, "_steps", steps)
        object.__setattr__(self, "_smooth", self.dut1_s - steps)

    def covers(self, t_s: float) -> bool:
        mjd = MJD_UNIX_EPOCH + t_s / 86400.0
        return bool(self.mjd[0] <= mjd <= self.mjd[-1])

    def at(self, t_s: F64 | float) -> tuple[F64, F64, F64]:
        """(UT1−UTC s, xp arcsec, yp arcsec) at POSIX times ``t_s``, linearly interpolated.

        Across a leap second the tabulated UT1−UTC jumps by one second; the interpolation is
        done on UT1−TAI-like continuous values (jumps removed) and restored after.
        """
        mjd = MJD_UNIX_EPOCH + np.asarray(t_s, dtype=np.float64) / 86400.0
        steps: F64 = self._steps  # type: ignore[attr-defined]
        idx = np.clip(np.searchsorted(self.mjd, mjd, side="right") - 1, 0, len(self.mjd) - 1)
        dut1 = np.interp(mjd, self.mjd, self._smooth) + steps[idx]  # type: ignore[attr-defined]
        return (
            dut1,
            np.interp(mjd, self.mjd, self.xp_arcsec),
            np.interp(mjd, self.mjd, self.yp_arcsec),
        )


def load_finals(path: str | Path) -> EarthOrientation:
    """Parse an IERS ``finals2000A.all`` / ``finals.all`` file (Bulletin A columns).

    Columns (1-based): MJD 8–15, x 19–27, y 38–46, UT1−UTC 59–68. Rows without UT1−UTC
    (beyond the prediction span) end the table.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read IERS finals file: {exc}", source=str(p)) from None
    mjd, dut1, xp, yp = [], [], [], []
    for n, line in enumerate(lines, start=1):
        if len(line) < 68 or not line[58:68].strip():
            break
        try:
            mjd.append(float(line[7:15]))
            xp.append(float(line[18:27]))
            yp.append(float(line[37:46]))
            dut1.append(float(line[58:68]))
        except ValueError:
            raise ConfigError("malformed IERS finals row", source=str(p), key=f"line {n}") from None
    if len(mjd) < 2:
        raise ConfigError("no Earth-orientation rows found", source=str(p))
    return EarthOrientation(np.array(mjd), np.array(dut1), np.array(xp), np.array(yp), str(p))


@cache
def default_eop() -> EarthOrientation:
    """The IERS table shipped with skyfield-data (read once; no network)."""
    ref = resources.files("skyfield_data") / "data" / "finals2000A.all"
    with resources.as_file(ref) as path:
        eop = load_finals(path)
    log.debug("loaded Earth orientation %s (MJD %.0f..%.0f)", path, eop.mjd[0], eop.mjd[-1])
    return eop


def gmst82_rad(jd_ut1_whole: F64, jd_ut1_frac: F64) -> F64:
    """Greenwich Mean Sidereal Time, IAU 1982 (radians, in [0, 2π)), from a two-part UT1 JD."""
    t = (jd_ut1_whole - 2451545.0 + jd_ut1_frac) / 36525.0
    g = 67310.54841 + (8640184.812866 + (0.093104 + (-6.2e-6) * t) * t) * t
    turns = (jd_ut1_whole % 1.0 + jd_ut1_frac + g / 86400.0 % 1.0) % 1.0
    out: F64 = turns * (2.0 * math.pi)
    return out


def gmst_at(t_s: F64, eop: EarthOrientation) -> F64:
    """GMST (rad) at POSIX UTC times ``t_s`` using the UT1 of ``eop``.

    UT1−UTC drifts by ~1 ms/day, so over a span without a leap second it is interpolated
    linearly between the span's end points (exact to µs for a pass, and much cheaper than
    a table lookup per sample); a span containing a leap second uses the full table.
    """
    t0, t1 = float(t_s[0]), float(t_s[-1])
    ends, _, _ = eop.at(np.array([t0, t1]))
    if abs(ends[1] - ends[0]) < 0.5 and t1 - t0 < 3 * 86400.0:
        slope = (ends[1] - ends[0]) / (t1 - t0) if t1 > t0 else 0.0
        dut1: F64 | float = ends[0] + (t_s - t0) * slope
    else:
        dut1 = eop.at(t_s)[0]
    days = np.floor(t_s / 86400.0)
    frac = (t_s - days * 86400.0 + dut1) / 86400.0
    return gmst82_rad(JD_UNIX_EPOCH + days, frac)


def polar_motion_matrix(xp_arcsec: float, yp_arcsec: float) -> F64:
    """M with r_ITRS = M @ r_PEF: the transpose of IERS 2010 W = R2(xp) R1(yp) (s' < 0.1 mas)."""
    x, y = xp_arcsec * ARCSEC, yp_arcsec * ARCSEC
    cx, sx, cy, sy = math.cos(x), math.sin(x), math.cos(y), math.sin(y)
    # W^T = R1(-y) R2(-x), R1 and R2 being passive (frame) rotations
    r1 = np.array([[1.0, 0.0, 0.0], [0.0, cy, -sy], [0.0, sy, cy]])
    r2 = np.array([[cx, 0.0, sx], [0.0, 1.0, 0.0], [-sx, 0.0, cx]])
    out: F64 = r1 @ r2
    return out


class TemeToItrs:
    """The TEME → ITRS rotation at a series of times, computed once and applied many times.

    ``rotate`` turns any TEME vectors (positions, or velocities *without* the frame term);
    ``velocity`` gives Earth-relative velocities (adds the −ω×r term of the rotating frame).
    Polar motion is taken at the middle of the time span: it changes by < 1 mas per hour.
    """

    def __init__(self, t_s: F64, eop: EarthOrientation, *, polar_motion: bool = True) -> None:
        theta = gmst_at(t_s, eop)
        self._c, self._s = np.cos(theta), np.sin(theta)
        self._w: F64 | None = None
        if polar_motion:
            _, xp, yp = eop.at(float(t_s[len(t_s) // 2]))
            self._w = polar_motion_matrix(float(xp), float(yp))

    def _pef(self, vec: F64) -> F64:
        c, s = self._c, self._s
        x, y = vec[:, 0], vec[:, 1]
        return np.column_stack((c * x + s * y, c * y - s * x, vec[:, 2]))

    def _pm(self, pef: F64) -> F64:
        if self._w is None:
            return pef
        out: F64 = pef @ self._w.T
        return out

    def rotate(self, vec: F64) -> F64:
        """Rotate TEME vectors (N, 3) into ITRS axes."""
        return self._pm(self._pef(vec))

    def state(self, r_teme: F64, v_teme: F64) -> tuple[F64, F64, F64]:
        """(position, rotated inertial velocity, Earth-relative velocity) in ITRS axes."""
        pef_r = self._pef(r_teme)
        pef_v = self._pef(v_teme)
        rel = pef_v.copy()
        rel[:, 0] += OMEGA_EARTH * pef_r[:, 1]
        rel[:, 1] -= OMEGA_EARTH * pef_r[:, 0]
        return self._pm(pef_r), self._pm(pef_v), self._pm(rel)

    def velocity(self, r_teme: F64, v_teme: F64) -> F64:
        """Earth-relative ITRS velocity (km/s) of TEME state vectors."""
        pef_r = self._pef(r_teme)
        pef_v = self._pef(v_teme)
        pef_v[:, 0] += OMEGA_EARTH * pef_r[:, 1]
        pef_v[:, 1] -= OMEGA_EARTH * pef_r[:, 0]
        return self._pm(pef_v)


def teme_to_itrs(
    t_s: F64,
    r_teme: F64,
    v_teme: F64 | None,
    eop: EarthOrientation,
    *,
    polar_motion: bool = True,
) -> tuple[F64, F64 | None]:
    """Rotate TEME positions (N,3) km (and velocities km/s) into the Earth-fixed ITRS.

    Velocities become Earth-relative (the −ω×r term of the rotating frame).
    """
    rot = TemeToItrs(t_s, eop, polar_motion=polar_motion)
    return rot.rotate(r_teme), None if v_teme is None else rot.velocity(r_teme, v_teme)


def geodetic_to_itrs(lat_deg: float, lon_deg: float, alt_m: float) -> F64:
    """WGS84 geodetic latitude/longitude/height → Earth-fixed Cartesian position (km)."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    e2 = WGS84_F * (2.0 - WGS84_F)
    n = WGS84_A_KM / math.sqrt(1.0 - e2 * math.sin(lat) ** 2)
    h = alt_m / 1000.0
    return np.array(
        [
            (n + h) * math.cos(lat) * math.cos(lon),
            (n + h) * math.cos(lat) * math.sin(lon),
            (n * (1.0 - e2) + h) * math.sin(lat),
        ]
    )


def enu_matrix(lat_deg: float, lon_deg: float) -> F64:
    """Rows are the local East, North, Up unit vectors in ITRS (geodetic normal as Up)."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    sl, cl, sp, cp = math.sin(lon), math.cos(lon), math.sin(lat), math.cos(lat)
    return np.array(
        [
            [-sl, cl, 0.0],
            [-sp * cl, -sp * sl, cp],
            [cp * cl, cp * sl, sp],
        ]
    )
