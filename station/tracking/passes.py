"""Pass prediction: AOS / culmination (TCA) / LOS above a site's limits, and common windows.

A satellite is *visible* from a site when its geometric elevation is above the site's limit
at that azimuth: max(min_elevation_deg, horizon mask). The search samples the whole span at
``coarse_step_s`` (10 s: a LEO pass above 10° lasts minutes, so only passes that clip the
limit for < 10 s can be missed — those are useless for a link anyway), then refines every
crossing by bisection to ``tolerance_s`` and the culmination by golden-section search.

Each pass carries its night/day flag (Sun elevation at TCA below ``night_sun_el_deg``,
−12° = nautical twilight by default: quantum downlinks are night-only, see physics.md) and
the minimum Sun and Moon separation along the pass (sampled at 1 s).

A *common-visibility window* of several stations is an interval where every station sees
the satellite above its own limits at the same time: the intersection of their passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sgp4.api import Satrec

from station.tracking.earth import EarthOrientation, default_eop
from station.tracking.elements import iso
from station.tracking.ephemeris import look_angles
from station.tracking.site import Site
from station.tracking.sunmoon import moon_altaz, separation_deg, sun_altaz

F64 = npt.NDArray[np.float64]
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Pass:
    """One pass over one site; times are POSIX seconds UTC, angles in degrees."""

    site: str
    aos_s: float
    tca_s: float
    los_s: float
    max_elevation_deg: float
    aos_az_deg: float
    tca_az_deg: float
    los_az_deg: float
    sun_el_at_tca_deg: float
    night: bool
    min_sun_separation_deg: float
    min_moon_separation_deg: float

    @property
    def duration_s(self) -> float:
        return self.los_s - self.aos_s

    def to_json(self) -> dict[str, object]:
        return {
            "site": self.site,
            "aos": iso(self.aos_s),
            "tca": iso(self.tca_s),
            "los": iso(self.los_s),
            "duration_s": round(self.duration_s, 1),
            "max_elevation_deg": round(self.max_elevation_deg, 3),
            "aos_az_deg": round(self.aos_az_deg, 2),
            "tca_az_deg": round(self.tca_az_deg, 2),
            "los_az_deg": round(self.los_az_deg, 2),
            "sun_el_at_tca_deg": round(self.sun_el_at_tca_deg, 2),
            "night": self.night,
            "min_sun_separation_deg": round(self.min_sun_separation_deg, 2),
            "min_moon_separation_deg": round(self.min_moon_separation_deg, 2),
        }


@dataclass(frozen=True)
class CommonWindow:
    """An interval in which every listed site sees the satellite (POSIX seconds UTC)."""

    start_s: float
    end_s: float
    passes: tuple[Pass, ...]

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def all_night(self) -> bool:
        return all(p.night for p in self.passes)

    def to_json(self) -> dict[str, object]:
        return {
            "start": iso(self.start_s),
            "end": iso(self.end_s),
            "duration_s": round(self.duration_s, 1),
            "night": self.all_night,
            "passes": [p.to_json() for p in self.passes],
        }


class _Visibility:
    """Margin above the site limit, f(t) = el(t) − limit(az(t)) (deg), for root finding."""

    def __init__(self, sat: Satrec, site: Site, eop: EarthOrientation) -> None:
        self.sat, self.site, self.eop = sat, site, eop

    def margin(self, t: F64) -> F64:
        la = look_angles(self.sat, self.site, t, eop=self.eop, apparent=False, refraction=False)
        out: F64 = la.el_deg - self.site.limit_deg(la.az_deg)
        return out

    def elevation(self, t: F64) -> F64:
        la = look_angles(self.sat, self.site, t, eop=self.eop, apparent=False, refraction=False)
        return la.el_deg


def _bisect(vis: _Visibility, lo: F64, hi: F64, tol: float) -> F64:
    """Vectorized bisection of sign changes of the margin: f(lo) and f(hi) differ in sign."""
    f_lo = vis.margin(lo)
    for _ in range(64):
        if float(np.max(hi - lo)) <= tol:
            break
        mid = 0.5 * (lo + hi)
        f_mid = vis.margin(mid)
        same = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, f_mid, f_lo)
        hi = np.where(same, hi, mid)
    out: F64 = 0.5 * (lo + hi)
    return out


def _culmination(vis: _Visibility, a: float, b: float, tol: float) -> float:
    """Golden-section search for the elevation maximum in [a, b] (unimodal within a pass)."""
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = (float(x) for x in vis.elevation(np.array([c, d])))
    for _ in range(100):
        if b - a <= tol:
            break
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = float(vis.elevation(np.array([c]))[0])
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = float(vis.elevation(np.array([d]))[0])
    return 0.5 * (a + b)


def find_passes(
    sat: Satrec,
    site: Site,
    start_s: float,
    days: float,
    *,
    eop: EarthOrientation | None = None,
    coarse_step_s: float = 10.0,
    tolerance_s: float = 0.05,
    night_sun_el_deg: float = -12.0,
) -> list[Pass]:
    """All passes of ``sat`` over ``site`` from ``start_s`` for ``days`` days.

    A pass already in progress at ``start_s`` (or still going at the end) is clipped to the
    span: its AOS/LOS are the span's edges.
    """
    if days <= 0 or not math.isfinite(days):
        raise ValueError(f"days must be > 0, got {days}")
    eop = default_eop() if eop is None else eop
    vis = _Visibility(sat, site, eop)
    end_s = start_s + days * 86400.0
    t = np.arange(start_s, end_s + coarse_step_s, coarse_step_s)
    t[-1] = min(t[-1], end_s)
    up = vis.margin(t) > 0
    edges = np.flatnonzero(np.diff(up.astype(np.int8)))
    times = _bisect(vis, t[edges], t[edges + 1], tolerance_s) if len(edges) else np.empty(0)
    rises = [float(x) for x, i in zip(times, edges, strict=True) if not up[i]]
    sets = [float(x) for x, i in zip(times, edges, strict=True) if up[i]]
    if up[0]:
        rises.insert(0, float(t[0]))
    if up[-1]:
        sets.append(float(t[-1]))
    out = []
    for aos, los in zip(rises, sets, strict=True):
        tca = _culmination(vis, aos, los, tolerance_s)
        out.append(_describe(sat, site, eop, aos, tca, los, night_sun_el_deg))
    return out


def _describe(
    sat: Satrec,
    site: Site,
    eop: EarthOrientation,
    aos: float,
    tca: float,
    los: float,
    night_sun_el_deg: float,
) -> Pass:
    n = max(3, int(los - aos) + 1)
    t = np.linspace(aos, los, n)
    la = look_angles(sat, site, t, eop=eop, apparent=False, refraction=False)
    sun = sun_altaz(t, site, eop)
    moon = moon_altaz(t, site, eop)
    ends = look_angles(
        sat, site, np.array([aos, tca, los]), eop=eop, apparent=False, refraction=False
    )
    sun_tca = float(sun_altaz(np.array([tca]), site, eop).el_deg[0])
    return Pass(
        site=site.name,
        aos_s=aos,
        tca_s=tca,
        los_s=los,
        max_elevation_deg=float(ends.el_deg[1]),
        aos_az_deg=float(ends.az_deg[0]),
        tca_az_deg=float(ends.az_deg[1]),
        los_az_deg=float(ends.az_deg[2]),
        sun_el_at_tca_deg=sun_tca,
        night=sun_tca < night_sun_el_deg,
        min_sun_separation_deg=float(
            separation_deg(la.az_deg, la.el_deg, sun.az_deg, sun.el_deg).min()
        ),
        min_moon_separation_deg=float(
            separation_deg(la.az_deg, la.el_deg, moon.az_deg, moon.el_deg).min()
        ),
    )


def common_windows(
    passes_per_site: list[list[Pass]], *, min_duration_s: float = 0.0
) -> list[CommonWindow]:
    """Intervals where every site sees the satellite: intersections of one pass per site."""
    if not passes_per_site:
        return []
    windows: list[tuple[float, float, tuple[Pass, ...]]] = [
        (p.aos_s, p.los_s, (p,)) for p in passes_per_site[0]
    ]
    for others in passes_per_site[1:]:
        nxt = []
        for start, end, members in windows:
            for p in others:
                lo, hi = max(start, p.aos_s), min(end, p.los_s)
                if hi > lo:
                    nxt.append((lo, hi, (*members, p)))
        windows = nxt
    return [
        CommonWindow(lo, hi, members)
        for lo, hi, members in sorted(windows)
        if hi - lo >= min_duration_s
    ]
