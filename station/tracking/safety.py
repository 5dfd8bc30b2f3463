"""The safety gate: every commanded target and every slew path passes through here.

Policy (this docstring is the specification; tests in tests/unit/station/tracking/
test_safety*.py check each rule, including hypothesis properties over random targets,
passes, slews and Sun/Moon positions):

Definitions
    *axis position* — what the mount is commanded: azimuth inside the cable-wrap sector,
    elevation possibly above 90° on an over-the-top mount. *sky direction* — where the
    telescope points: an axis position (az, el > 90) is the sky direction (az + 180,
    180 − el). ``sun_dist`` — great-circle angle between the sky direction and the Sun;
    ``moon_dist`` likewise. ``sun_time`` — time until a planned trajectory first comes
    closer to the Sun than the exclusion radius (None: never within the plan).

Rules for a *target* (a tracking sample or a goto) at time t
    1. axis azimuth in [az_min, az_max] and axis elevation in [el_min, el_max] (mount
       range; the cable-wrap sector is the azimuth range);
    2. sky elevation ≥ the site limit at that azimuth: max(min_elevation, horizon mask);
    3. sun_dist ≥ sun_radius + sun model error (0.02°);
    4. moon_dist ≥ moon_radius + moon model error (0.5°).

Rules for a *slew path* (start → end, both axes moving at once with trapezoidal
profiles, as :meth:`drivers.datatypes.AxisLimits.move_time_s` models them)
    5. both end points and every point in between satisfy rule 1;
    6. every point is above the horizon mask (not the tracking ``min_elevation``: slewing
       low is allowed, pointing into the terrain is not) and above el_min;
    7. sun_dist ≥ sun_radius + sun_slew_margin + model error along the whole path, with
       the Sun taken at the time each point is reached (it moves 0.004°/s);
    8. moon rule 4 along the whole path.

A *trajectory* (time-tagged samples the mount interpolates linearly) obeys rules 1–4 at
every point of the interpolated path, not only at the samples.

Between checked points a path is sampled finely enough that consecutive checked points
are at most ``max_step_deg`` apart (|Δaz| + |Δel| bounds the angle); half that step is
added to every radius, so no point of the continuous path can be inside a zone while all
samples pass. The Sun/Moon come from the low-precision series in
:mod:`station.tracking.sunmoon`; their stated error is added to the radii.

A violation raises :class:`SafetyViolation` (a :class:`~drivers.errors.LimitViolation`)
with ``reason`` (one of :data:`REASONS`), the time, the offending direction and the
numbers (distance and limit); nothing is commanded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drivers.datatypes import AltAz, MountLimits, Trajectory
from drivers.errors import LimitViolation
from station.tracking.earth import EarthOrientation
from station.tracking.site import Site
from station.tracking.sunmoon import (
    MOON_MODEL_ERROR_DEG,
    SUN_MODEL_ERROR_DEG,
    moon_altaz,
    separation_deg,
    sun_altaz,
)

F64 = npt.NDArray[np.float64]

REASONS = ("azimuth_limit", "elevation_limit", "horizon", "sun", "moon")

MIN_SLEW_S = 1e-3  #: s: a slew shorter than this is sampled as one 1 ms step


class SafetyViolation(LimitViolation):
    """A target or path breaks a safety rule; nothing was commanded.

    Attributes: ``reason`` (one of :data:`REASONS`), ``t_s`` (POSIX s), ``target`` (axis
    position), ``value`` and ``limit`` (deg: the distance or angle and the bound it broke).
    """

    def __init__(
        self, reason: str, message: str, *, t_s: float, target: AltAz, value: float, limit: float
    ) -> None:
        self.reason, self.t_s, self.target = reason, t_s, target
        self.value, self.limit = value, limit
        super().__init__(message, hint="nothing was commanded")


class SkyBodies(Protocol):
    """Sun and Moon sky directions (az, el in deg) at POSIX times, for one site."""

    def sun(self, t_s: F64) -> tuple[F64, F64]: ...

    def moon(self, t_s: F64) -> tuple[F64, F64]: ...


@dataclass(frozen=True)
class SiteSky:
    """Sun/Moon from the low-precision series for a site."""

    site: Site
    eop: EarthOrientation | None = None

    def sun(self, t_s: F64) -> tuple[F64, F64]:
        b = sun_altaz(t_s, self.site, self.eop)
        return b.az_deg, b.el_deg

    def moon(self, t_s: F64) -> tuple[F64, F64]:
        b = moon_altaz(t_s, self.site, self.eop)
        return b.az_deg, b.el_deg


@dataclass(frozen=True)
class FixedSky:
    """Sun and Moon fixed in the sky (tests, what-if checks); el < −90 means absent."""

    sun_az_deg: float
    sun_el_deg: float
    moon_az_deg: float = 0.0
    moon_el_deg: float = -100.0

    def sun(self, t_s: F64) -> tuple[F64, F64]:
        n = len(np.atleast_1d(t_s))
        return np.full(n, self.sun_az_deg), np.full(n, self.sun_el_deg)

    def moon(self, t_s: F64) -> tuple[F64, F64]:
        n = len(np.atleast_1d(t_s))
        return np.full(n, self.moon_az_deg), np.full(n, self.moon_el_deg)


@dataclass(frozen=True)
class SafetyPolicy:
    """Numbers of the policy (deg). ``site`` gives the horizon mask and min elevation."""

    limits: MountLimits
    site: Site
    sun_radius_deg: float = 30.0
    sun_slew_margin_deg: float = 5.0
    moon_radius_deg: float = 10.0
    sun_model_error_deg: float = SUN_MODEL_ERROR_DEG
    moon_model_error_deg: float = MOON_MODEL_ERROR_DEG
    max_step_deg: float = 0.25
    tolerance_deg: float = field(default=1e-6)


def sky_direction(az_axis: F64, el_axis: F64) -> tuple[F64, F64]:
    """Axis coordinates → sky az in [0, 360) and el ≤ 90 (over-the-top folded back)."""
    over = el_axis > 90.0
    az = np.where(over, az_axis + 180.0, az_axis) % 360.0
    el = np.where(over, 180.0 - el_axis, el_axis)
    return az, el


def _trapezoid(d: float, v: float, a: float, t: F64) -> F64:
    """Signed position along a rest-to-rest trapezoidal move of ``d`` at times ``t``."""
    dist = abs(d)
    if dist == 0:
        return np.zeros_like(t)
    if dist <= v * v / a:  # triangular profile
        t_acc = math.sqrt(dist / a)
        v_peak = a * t_acc
        total = 2 * t_acc
    else:
        t_acc = v / a
        v_peak = v
        total = 2 * t_acc + (dist - v * v / a) / v
    tc = np.clip(t, 0.0, total)
    x_acc = 0.5 * a * t_acc * t_acc
    up = 0.5 * a * tc * tc
    cruise = x_acc + v_peak * (tc - t_acc)
    down_t = total - tc
    down = dist - 0.5 * a * down_t * down_t
    pos = np.where(tc < t_acc, up, np.where(tc <= total - t_acc, cruise, down))
    out: F64 = math.copysign(1.0, d) * pos
    return out


class SafetyGate:
    """Checks targets, trajectories and slews against a :class:`SafetyPolicy`."""

    def __init__(self, policy: SafetyPolicy, sky: SkyBodies) -> None:
        self.policy = policy
        self.sky = sky

    # ----------------------------------------------------------------- building blocks

    def _check_points(
        self,
        t: F64,
        az_axis: F64,
        el_axis: F64,
        *,
        slew: bool,
        pad_deg: float,
    ) -> None:
        p = self.policy
        tol = p.tolerance_deg
        lim = p.limits
        for reason, x, ax in (
            ("azimuth_limit", az_axis, lim.az),
            ("elevation_limit", el_axis, lim.el),
        ):
            bad = np.flatnonzero((x < ax.min_deg - tol) | (x > ax.max_deg + tol))
            if len(bad):
                i = int(bad[0])
                what = "azimuth" if reason == "azimuth_limit" else "elevation"
                self._raise(
                    reason,
                    f"{what} {x[i]:.4f} deg outside the mount range "
                    f"[{ax.min_deg:g}, {ax.max_deg:g}] deg",
                    t,
                    az_axis,
                    el_axis,
                    i,
                    float(x[i]),
                    ax.min_deg if x[i] < ax.min_deg else ax.max_deg,
                )
        az, el = sky_direction(az_axis, el_axis)
        floor = p.site.horizon_mask.elevation_deg(az)
        if not slew:
            floor = np.maximum(floor, p.site.min_elevation_deg)
        bad = np.flatnonzero(el < floor - tol)
        if len(bad):
            i = int(bad[0])
            self._raise(
                "horizon",
                f"sky elevation {el[i]:.3f} deg is below the site limit {floor[i]:.3f} deg at "
                f"azimuth {az[i]:.2f} deg",
                t,
                az_axis,
                el_axis,
                i,
                float(el[i]),
                float(floor[i]),
            )
        for body, radius, err in (
            (
                "sun",
                p.sun_radius_deg + (p.sun_slew_margin_deg if slew else 0.0),
                p.sun_model_error_deg,
            ),
            ("moon", p.moon_radius_deg, p.moon_model_error_deg),
        ):
            if radius <= 0:
                continue
            b_az, b_el = self.sky.sun(t) if body == "sun" else self.sky.moon(t)
            dist = separation_deg(az, el, b_az, b_el)
            limit = radius + err + pad_deg
            present = b_el >= -90.0
            bad = np.flatnonzero(present & (dist < limit))
            if len(bad):
                i = int(bad[0])
                self._raise(
                    body,
                    f"{'slew path' if slew else 'target'} passes {dist[i]:.3f} deg from the "
                    f"{body} (az {b_az[i]:.2f}, el {b_el[i]:.2f}); the exclusion radius "
                    f"{'incl. slew margin ' if slew and body == 'sun' else ''}is {radius:g} "
                    f"deg (+{err + pad_deg:.3f} model/sampling allowance)",
                    t,
                    az_axis,
                    el_axis,
                    i,
                    float(dist[i]),
                    limit,
                )

    @staticmethod
    def _raise(
        reason: str, text: str, t: F64, az: F64, el: F64, i: int, value: float, limit: float
    ) -> None:
        target = AltAz(float(az[i]), float(el[i]))
        raise SafetyViolation(
            reason,
            f"unsafe ({reason}) at t={float(t[i]):.3f}: {text}; axis target "
            f"az {target.az_deg:.3f} el {target.el_deg:.3f}",
            t_s=float(t[i]),
            target=target,
            value=value,
            limit=limit,
        )

    # ----------------------------------------------------------------- public checks

    def check_target(self, target: AltAz, t_s: float) -> None:
        """Rules 1–4 for one commanded axis position at time ``t_s``."""
        self._check_points(
            np.array([t_s]),
            np.array([target.az_deg]),
            np.array([target.el_deg]),
            slew=False,
            pad_deg=0.0,
        )

    def densify(self, traj: Trajectory) -> tuple[F64, F64, F64]:
        """Trajectory resampled so consecutive points are ≤ max_step_deg apart (|Δaz|+|Δel|)."""
        t, az, el = traj.t_s, traj.az_deg, traj.el_deg
        if len(t) < 2:
            return t, az, el
        step = np.abs(np.diff(az)) + np.abs(np.diff(el))
        sub = np.maximum(1, np.ceil(step / self.policy.max_step_deg).astype(np.intp))
        if int(sub.max()) == 1:
            return t, az, el
        seg = np.repeat(np.arange(len(t) - 1), sub)
        frac = np.concatenate([np.arange(k) / k for k in sub])

        def lerp(x: F64) -> F64:
            out: F64 = np.concatenate([x[seg] + (x[seg + 1] - x[seg]) * frac, x[-1:]])
            return out

        return lerp(t), lerp(az), lerp(el)

    def check_trajectory(self, traj: Trajectory) -> None:
        """Rules 1–4 along the whole linearly interpolated trajectory."""
        t, az, el = self.densify(traj)
        self._check_points(t, az, el, slew=False, pad_deg=self.policy.max_step_deg / 2)

    def slew_path(self, start: AltAz, end: AltAz, t0_s: float) -> Trajectory:
        """The path a simultaneous two-axis trapezoidal slew takes (axis coordinates)."""
        lim = self.policy.limits
        d_az, d_el = end.az_deg - start.az_deg, end.el_deg - start.el_deg
        total = lim.move_time_s(start, end)
        speed = lim.az.max_speed_deg_s + lim.el.max_speed_deg_s
        n = max(2, math.ceil(total * speed / self.policy.max_step_deg) + 1)
        if total < MIN_SLEW_S:
            # (nearly) no move: two samples far enough apart to stay distinct at POSIX
            # magnitudes (float64 resolves ~0.2 us at 1.6e9 s; 1e-9 s vanished there and the
            # stow after a refused pass raised "trajectory times must be strictly increasing")
            tt = np.array([0.0, MIN_SLEW_S])
            az = np.array([start.az_deg, end.az_deg])
            el = np.array([start.el_deg, end.el_deg])
            return Trajectory(t0_s + tt, az, el)
        tt = np.linspace(0.0, total, n)
        az = start.az_deg + _trapezoid(d_az, lim.az.max_speed_deg_s, lim.az.max_accel_deg_s2, tt)
        el = start.el_deg + _trapezoid(d_el, lim.el.max_speed_deg_s, lim.el.max_accel_deg_s2, tt)
        return Trajectory(t0_s + tt, az, el)

    def check_slew(self, start: AltAz, end: AltAz, t0_s: float) -> None:
        """Rules 5–8 for a slew from ``start`` to ``end`` starting at ``t0_s``.

        A slew of less than :data:`MIN_SLEW_S` moves nothing: it is checked as a target (the
        slew margin guards a path the mount sweeps; a mount parked 31 deg from the Sun that
        is told to stay parked sweeps none, and refusing it would fault a station for not
        moving).
        """
        if self.policy.limits.move_time_s(start, end) < MIN_SLEW_S:
            self.check_target(end, t0_s)
            return
        path = self.slew_path(start, end, t0_s)
        t, az, el = self.densify(path)
        self._check_points(t, az, el, slew=True, pad_deg=self.policy.max_step_deg / 2)

    def sun_time(self, traj: Trajectory, now_s: float) -> float | None:
        """Seconds from ``now_s`` until ``traj`` first enters the Sun zone; None if never."""
        t, az_axis, el_axis = self.densify(traj)
        az, el = sky_direction(az_axis, el_axis)
        s_az, s_el = self.sky.sun(t)
        inside = separation_deg(az, el, s_az, s_el) < (
            self.policy.sun_radius_deg + self.policy.sun_model_error_deg
        )
        inside &= t >= now_s
        idx = np.flatnonzero(inside)
        return None if not len(idx) else max(0.0, float(t[idx[0]]) - now_s)
