"""Mount kinematics planning for az/el mounts: cable wrap, zenith keyhole, dynamics, pre-position.

Given a pass sampled at the tracking rate (sky azimuth/elevation), produce the *axis*
trajectory the mount will follow, decided entirely before AOS:

1. **Keyhole detection.** Near the zenith an az/el mount needs an azimuth rate ~ ω/cos(el)
   and a 180° azimuth swing at culmination; samples whose azimuth speed or acceleration
   exceeds the axis limits form the keyhole segment(s).
2. **Strategy** (``[mount] keyhole_strategy``):
   - ``flip`` (needs ``over_the_top`` and el_max > 90): after culmination the mount points
     at (az + 180°, 180° − el) — the same sky direction with the tube past the zenith — so
     the 180° azimuth swing disappears: an exactly overhead pass needs no azimuth motion,
     one passing δ from the zenith only a small one, bridged over the zenith by the cubic
     below (pointing error ≤ ~δ). Without over-the-top support it falls back to ``skip``.
   - ``skip``: the keyhole is bridged by a cubic that matches position and rate at both
     ends, widened until the bridge fits the axis speed and acceleration.
   In both cases samples where the commanded axes point more than 1″ from the satellite
   are marked *unobservable*.
3. **Cable wrap.** The continuous (unwrapped) azimuth track is shifted by k·360° into the
   configured sector (e.g. −270..270 or 0..450) so no unwind happens mid-pass; among the
   shifts that fit, the one closest to the mount's start position wins (shortest
   pre-position slew), ties broken by the larger margin to the sector ends. When no shift
   fits and the mount goes over the top, the whole pass is flown over the top
   (az + 180°, 180° − el): the same sky, the azimuth span turned by 180°.
4. **Whole-trajectory check** of positions, speeds and accelerations; a failure names the
   first failing segment (times, axis, required and allowed values).
5. **Pre-position**: the first trajectory point, and the time to start slewing there from
   the start position (trapezoidal move time + settle time) so the mount waits at AOS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.datatypes import AltAz, MountLimits, Trajectory
from drivers.errors import LimitViolation
from station.tracking.elements import iso

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
_TOL = 1e-6  # relative slack on limits (numerical differentiation noise)


@dataclass(frozen=True)
class Segment:
    """A time interval where one axis breaks one limit: ``required`` vs ``limit``."""

    start_s: float
    end_s: float
    axis: str  #: "azimuth" or "elevation"
    quantity: str  #: "position", "speed" or "acceleration"
    required: float
    limit: float

    def describe(self) -> str:
        unit = {"position": "deg", "speed": "deg/s", "acceleration": "deg/s^2"}[self.quantity]
        return (
            f"{self.axis} {self.quantity} {self.required:.3f} {unit} exceeds the limit "
            f"{self.limit:g} {unit} from {iso(self.start_s)} to {iso(self.end_s)}"
        )


class TrajectoryInfeasible(LimitViolation):
    """A planned trajectory cannot be followed; ``segment`` says where and why (if known)."""

    def __init__(self, message: str, *, segment: Segment | None = None) -> None:
        self.segment = segment
        super().__init__(message, hint="nothing was commanded; see the failing segment")


@dataclass(frozen=True)
class MountPlan:
    """The mount's plan for one pass.

    ``trajectory`` is in axis coordinates (azimuth inside the wrap sector, elevation > 90
    while flipped); ``sky_az_deg``/``sky_el_deg`` are the sky directions at the same times
    (for the safety gate and plots); ``observable`` is False inside skipped keyholes.
    """

    trajectory: Trajectory
    sky_az_deg: F64
    sky_el_deg: F64
    observable: B
    wrap_offset_deg: float
    strategy: str  #: "none", "flip", "skip" or "over_the_top" (the whole pass, for the wrap)
    keyhole: tuple[tuple[float, float], ...]
    flip_time_s: float | None
    start: AltAz
    preposition: AltAz
    preposition_slew_s: float
    preposition_start_s: float

    def unobservable(self) -> list[tuple[float, float]]:
        """Skipped intervals (POSIX seconds)."""
        return _runs(self.trajectory.t_s, ~self.observable)


def _runs(t: F64, mask: B) -> list[tuple[float, float]]:
    out = []
    idx = np.flatnonzero(mask)
    if len(idx):
        breaks = np.flatnonzero(np.diff(idx) > 1)
        starts = np.concatenate([[idx[0]], idx[breaks + 1]])
        ends = np.concatenate([idx[breaks], [idx[-1]]])
        out = [(float(t[a]), float(t[b])) for a, b in zip(starts, ends, strict=True)]
    return out


def _rates(t: F64, x: F64) -> tuple[F64, F64]:
    v = np.gradient(x, t)
    return v, np.gradient(v, t)


def check_dynamics(traj: Trajectory, limits: MountLimits) -> list[Segment]:
    """Every segment where the trajectory leaves the axis range or speed/accel limits."""
    t = traj.t_s
    out: list[Segment] = []
    for name, x, ax in (
        ("azimuth", traj.az_deg, limits.az),
        ("elevation", traj.el_deg, limits.el),
    ):
        pos_bad = (x < ax.min_deg - _TOL) | (x > ax.max_deg + _TOL)
        for a, b in _runs(t, pos_bad):
            sel = (t >= a) & (t <= b)
            worst = x[sel][np.argmax(np.maximum(ax.min_deg - x[sel], x[sel] - ax.max_deg))]
            bound = ax.min_deg if worst < ax.min_deg else ax.max_deg
            out.append(Segment(a, b, name, "position", float(worst), bound))
        if len(t) < 3:
            continue
        v, acc = _rates(t, x)
        for qty, series, lim in (
            ("speed", v, ax.max_speed_deg_s),
            ("acceleration", acc, ax.max_accel_deg_s2),
        ):
            bad = np.abs(series) > lim * (1 + _TOL)
            for a, b in _runs(t, bad):
                sel = (t >= a) & (t <= b)
                out.append(Segment(a, b, name, qty, float(np.max(np.abs(series[sel]))), lim))
    return sorted(out, key=lambda s: s.start_s)


def require_feasible(traj: Trajectory, limits: MountLimits) -> None:
    """Raise :class:`TrajectoryInfeasible` naming the first failing segment, if any."""
    bad = check_dynamics(traj, limits)
    if bad:
        more = f" (and {len(bad) - 1} more segment(s))" if len(bad) > 1 else ""
        raise TrajectoryInfeasible(bad[0].describe() + more, segment=bad[0])


def _keyhole_mask(t: F64, az_u: F64, limits: MountLimits) -> B:
    v, a = _rates(t, az_u)
    out: B = (np.abs(v) > limits.az.max_speed_deg_s) | (np.abs(a) > limits.az.max_accel_deg_s2)
    return out


def _flip_axes(az_sky: F64, el: F64, limits: MountLimits) -> tuple[F64, F64] | None:
    """Over-the-top: after culmination point at (az+180, 180-el); None if el_max forbids.

    The azimuth is unwrapped so that the step at culmination takes the short way: for an
    exactly overhead pass there is no step at all, for a pass δ from the zenith the axis
    azimuth moves by ~2·atan(δ/x) instead of ~180° (x: along-track distance from zenith).
    """
    i = int(np.argmax(el))
    axis_el = np.concatenate([el[: i + 1], 180.0 - el[i + 1 :]])
    if float(axis_el.max()) > limits.el.max_deg:
        return None
    axis_az = np.concatenate([az_sky[: i + 1], az_sky[i + 1 :] + 180.0])
    return np.degrees(np.unwrap(np.radians(axis_az))), axis_el


def _bridge(t: F64, x: F64, v: F64, a: int, b: int) -> F64:
    """Cubic Hermite from sample a to b matching positions and rates at both ends."""
    out = x.copy()
    h = t[b] - t[a]
    s = (t[a : b + 1] - t[a]) / h
    s2, s3 = s * s, s * s * s
    out[a : b + 1] = (
        (2 * s3 - 3 * s2 + 1) * x[a]
        + (s3 - 2 * s2 + s) * v[a] * h
        + (3 * s2 - 2 * s3) * x[b]
        + (s3 - s2) * v[b] * h
    )
    return out


def _bridge_runs(t: F64, az: F64, el: F64, limits: MountLimits) -> tuple[F64, F64]:
    """Bridge every keyhole run of (az, el), widening it until the bridge fits the limits."""
    axis_az, axis_el = az.copy(), el.copy()
    v_az, _ = _rates(t, az)
    v_el, _ = _rates(t, el)
    n = len(t)
    mask = _keyhole_mask(t, az, limits)
    for start, end in _runs(np.arange(n, dtype=np.float64), mask):
        a, b = int(start), int(end)
        for _ in range(n):  # bounded widening
            a, b = max(a - 1, 0), min(b + 1, n - 1)
            cand_az = _bridge(t, az, v_az, a, b)
            cand_el = _bridge(t, el, v_el, a, b)
            seg = Trajectory(t[a : b + 1], cand_az[a : b + 1], cand_el[a : b + 1])
            # rates only: positions are checked after the wrap offset is chosen
            rate_faults = [x for x in check_dynamics(seg, limits) if x.quantity != "position"]
            if not rate_faults or (a == 0 and b == n - 1):
                break
        axis_az[a : b + 1] = cand_az[a : b + 1]
        axis_el[a : b + 1] = cand_el[a : b + 1]
    return axis_az, axis_el


def pointing_error_deg(axis_az: F64, axis_el: F64, sky_az: F64, sky_el: F64) -> F64:
    """Angle (deg) between where the axes point (over-the-top aware) and the sky target."""
    over = axis_el > 90.0
    az = np.radians(np.where(over, axis_az + 180.0, axis_az))
    el = np.radians(np.where(over, 180.0 - axis_el, axis_el))
    a2, e2 = np.radians(sky_az), np.radians(sky_el)
    h = np.sin((e2 - el) / 2) ** 2 + np.cos(el) * np.cos(e2) * np.sin((a2 - az) / 2) ** 2
    out: F64 = np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))
    return out


def _choose_wrap(axis_az: F64, limits: MountLimits, start: AltAz) -> float:
    lo, hi = float(axis_az.min()), float(axis_az.max())
    ks = range(
        math.ceil((limits.az.min_deg - lo) / 360.0),
        math.floor((limits.az.max_deg - hi) / 360.0) + 1,
    )
    options = [360.0 * k for k in ks]
    if not options:
        raise TrajectoryInfeasible(
            f"the pass needs {hi - lo:.1f} deg of continuous azimuth, which the cable-wrap "
            f"sector [{limits.az.min_deg:g}, {limits.az.max_deg:g}] cannot hold without an "
            "unwind"
        )

    def cost(off: float) -> tuple[float, float]:
        margin = min(lo + off - limits.az.min_deg, limits.az.max_deg - (hi + off))
        return (round(abs(axis_az[0] + off - start.az_deg), 6), -margin)

    return min(options, key=cost)


def plan_pass(
    t_s: F64,
    sky_az_deg: F64,
    sky_el_deg: F64,
    limits: MountLimits,
    *,
    keyhole_strategy: str = "skip",
    over_the_top: bool = False,
    start: AltAz | None = None,
    settle_s: float = 5.0,
    observable_tol_deg: float = 1.0 / 3600.0,
) -> MountPlan:
    """Plan the axis trajectory for a sampled pass; raises TrajectoryInfeasible if impossible.

    Samples whose commanded axis position points more than ``observable_tol_deg`` (1″)
    away from the satellite are marked unobservable (inside keyhole bridges).
    """
    if keyhole_strategy not in ("flip", "skip"):
        raise ValueError(f"keyhole_strategy must be 'flip' or 'skip', got {keyhole_strategy!r}")
    t = np.asarray(t_s, dtype=np.float64)
    sky_az = np.asarray(sky_az_deg, dtype=np.float64)
    sky_el = np.asarray(sky_el_deg, dtype=np.float64)
    if len(t) < 3:
        raise ValueError("a pass plan needs at least 3 samples")
    start = start if start is not None else AltAz(0.0, 90.0)
    az_u = np.degrees(np.unwrap(np.radians(sky_az)))
    mask = _keyhole_mask(t, az_u, limits)
    keyhole = tuple(_runs(t, mask))
    axis_az, axis_el = az_u, sky_el
    observable = np.ones(len(t), dtype=bool)
    strategy, flip_time = "none", None
    if keyhole:
        flipped = (
            _flip_axes(sky_az, sky_el, limits)
            if keyhole_strategy == "flip" and over_the_top
            else None
        )
        if flipped is not None:
            axis_az, axis_el = _bridge_runs(t, flipped[0], flipped[1], limits)
            strategy, flip_time = "flip", float(t[int(np.argmax(sky_el))])
        else:
            axis_az, axis_el = _bridge_runs(t, az_u, sky_el, limits)
            strategy = "skip"
        observable = pointing_error_deg(axis_az, axis_el, sky_az, sky_el) <= observable_tol_deg
    try:
        offset = _choose_wrap(axis_az, limits, start)
    except TrajectoryInfeasible:
        if (
            strategy != "none"
            or not over_the_top
            or 180.0 - float(sky_el.min()) > limits.el.max_deg
        ):
            raise
        # The pass's azimuth span does not fit the cable wrap where it is; over the top the
        # axes point at the same sky from (az + 180, 180 - el), so the span turns by 180 deg
        # and may fit (Lijiang's [0, 450] sector and a pass from 300 deg through north).
        axis_az, axis_el = az_u + 180.0, 180.0 - sky_el
        strategy = "over_the_top"
        offset = _choose_wrap(axis_az, limits, start)
    traj = Trajectory(t, axis_az + offset, axis_el)
    require_feasible(traj, limits)
    first = AltAz(float(traj.az_deg[0]), float(traj.el_deg[0]))
    slew = limits.move_time_s(start, first)
    return MountPlan(
        trajectory=traj,
        sky_az_deg=sky_az,
        sky_el_deg=sky_el,
        observable=observable,
        wrap_offset_deg=offset,
        strategy=strategy,
        keyhole=keyhole,
        flip_time_s=flip_time,
        start=start,
        preposition=first,
        preposition_slew_s=slew,
        preposition_start_s=float(t[0]) - slew - settle_s,
    )
