"""One mount axis moving on trapezoidal velocity profiles, evaluated analytically in time.

A motion is a list of constant-acceleration segments; the position at any clock time is a
closed-form sum, so the emulator needs no polling loop and a :class:`~drivers.clock.WarpClock`
speeds motion up exactly. A new command in mid-motion replans from the current position and
velocity (decelerating first if the axis moves away from the new target), so the velocity is
continuous, as on a real servo. After a move ends the axis rings down for ``settle_s`` (a
damped overshoot, as a servo loop settles) before it counts as stopped.

Replanning keeps the superseded plans (the last :data:`PLAN_HISTORY`), so the position at a
recent *past* time is exact even after later commands (:meth:`AxisMotion.actual` at t < now):
the physics world asks where the mount pointed in the middle of an event slice it generates
after the fact, possibly late under back-pressure.

Units: degrees, seconds (clock time), deg/s, deg/s².
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: Overshoot of the ring-down per deg/s of speed before the final deceleration (deg per deg/s).
SETTLE_OVERSHOOT_S = 0.002
#: The ring-down amplitude never exceeds this (deg).
SETTLE_OVERSHOOT_MAX_DEG = 0.005
#: Superseded plans kept for evaluating past times (a 10 Hz command stream: 100 clock s).
PLAN_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class Segment:
    """Constant acceleration from ``t0`` for ``duration`` s, starting at ``p0`` with ``v0``."""

    t0: float
    duration: float
    p0: float
    v0: float
    accel: float

    def at(self, t: float) -> tuple[float, float]:
        dt = min(max(t - self.t0, 0.0), self.duration)
        return self.p0 + self.v0 * dt + 0.5 * self.accel * dt * dt, self.v0 + self.accel * dt

    @property
    def t_end(self) -> float:
        return self.t0 + self.duration


@dataclass(frozen=True, slots=True)
class _Plan:
    """The motion installed at ``t_start``: segments, then rest at ``rest`` with a ring-down."""

    t_start: float
    segments: tuple[Segment, ...]
    rest: float
    t_end: float  #: clock time the last segment ends
    overshoot: float  #: signed ring-down amplitude after t_end (deg)

    def at(self, t: float) -> tuple[float, float]:
        for seg in self.segments:
            if t < seg.t_end:
                return seg.at(t)
        return self.rest, 0.0

    def actual(self, t: float, settle_s: float) -> float:
        p, _ = self.at(t)
        dt = t - self.t_end
        if self.overshoot and 0.0 <= dt < settle_s:
            tau = settle_s / 4.0
            period = settle_s / 2.0
            p += self.overshoot * math.exp(-dt / tau) * math.sin(2.0 * math.pi * dt / period)
        return p


class AxisMotion:
    """Position and velocity of one axis as a function of clock time.

    Args:
        position: initial position (deg), at rest.
        max_speed: speed limit (deg/s).
        max_accel: acceleration limit (deg/s²).
        settle_s: ring-down time after each move (s).
    """

    def __init__(
        self, position: float, *, max_speed: float, max_accel: float, settle_s: float
    ) -> None:
        self.max_speed = max_speed
        self.max_accel = max_accel
        self.settle_s = max(0.0, settle_s)
        self._plan = _Plan(-math.inf, (), position, -math.inf, 0.0)
        self._past: deque[_Plan] = deque(maxlen=PLAN_HISTORY)
        self.target = position

    # ------------------------------------------------------------------ evaluation

    def _plan_at(self, t: float) -> _Plan:
        """The plan that was in force at ``t`` (the oldest kept one if ``t`` is older)."""
        if t >= self._plan.t_start or not self._past:
            return self._plan
        for plan in reversed(self._past):
            if t >= plan.t_start:
                return plan
        return self._past[0]

    def at(self, t: float) -> tuple[float, float]:
        """Commanded-profile position (deg) and velocity (deg/s) at clock time ``t``."""
        return self._plan_at(t).at(t)

    def actual(self, t: float) -> float:
        """Axis position at ``t`` including the settling ring-down (deg)."""
        return self._plan_at(t).actual(t, self.settle_s)

    def moving_at(self, t: float) -> bool:
        """True while on a profile or ringing down."""
        plan = self._plan_at(t)
        return t < plan.t_end + (self.settle_s if plan.overshoot else 0.0)

    def end_time(self) -> float:
        """Clock time the axis comes to rest and has settled."""
        return self._plan.t_end + (self.settle_s if self._plan.overshoot else 0.0)

    # ------------------------------------------------------------------ planning

    def move_to(self, t: float, target: float, speed: float | None = None) -> None:
        """Plan a move from the state at ``t`` to rest at ``target`` (speed capped at ``speed``)."""
        vmax = self.max_speed if speed is None else min(max(speed, 1e-9), self.max_speed)
        a = self.max_accel
        t_cmd = t
        p, v = self.at(t)
        segments: list[Segment] = []
        d = target - p
        direction = 1.0 if d >= 0 else -1.0
        stopping = v * v / (2.0 * a)
        if v * direction < 0 or stopping > abs(d) + 1e-12 or abs(v) > vmax + 1e-12:
            # Moving away, would overshoot, or faster than allowed: brake to rest first.
            t_brake = abs(v) / a
            brake = Segment(t, t_brake, p, v, -math.copysign(a, v))
            segments.append(brake)
            t, (p, v) = brake.t_end, brake.at(brake.t_end)
            v = 0.0
            d = target - p
            direction = 1.0 if d >= 0 else -1.0
        dist = abs(d)
        v0 = abs(v)
        overshoot = 0.0
        if dist > 1e-12:
            v_peak = min(vmax, math.sqrt(a * dist + v0 * v0 / 2.0))
            t1 = (v_peak - v0) / a
            d1 = (v_peak * v_peak - v0 * v0) / (2.0 * a)
            t3 = v_peak / a
            d3 = v_peak * v_peak / (2.0 * a)
            t2 = max(0.0, dist - d1 - d3) / v_peak
            s1 = Segment(t, t1, p, direction * v0, direction * a)
            s2 = Segment(s1.t_end, t2, p + direction * d1, direction * v_peak, 0.0)
            s3 = Segment(
                s2.t_end, t3, p + direction * (dist - d3), direction * v_peak, -direction * a
            )
            segments += [s for s in (s1, s2, s3) if s.duration > 0]
            overshoot = direction * min(SETTLE_OVERSHOOT_MAX_DEG, SETTLE_OVERSHOOT_S * v_peak)
        self._install(t_cmd, segments, target, t, overshoot)

    def stop(self, t: float) -> None:
        """Decelerate at the acceleration limit from the state at ``t`` to rest."""
        p, v = self.at(t)
        if v == 0.0:
            self.target = self._plan.rest
            return
        brake = Segment(t, abs(v) / self.max_accel, p, v, -math.copysign(self.max_accel, v))
        self._install(t, [brake], brake.at(brake.t_end)[0], t, 0.0)

    def hold(self, t: float) -> None:
        """Stop dead at the position of ``t`` (a stalled motor: no deceleration ramp)."""
        p = self.actual(t)
        self._install(t, [], p, t, 0.0)

    def _install(
        self, t: float, segments: list[Segment], rest: float, t_idle: float, overshoot: float
    ) -> None:
        """Make a new plan current from ``t`` (the old one is kept for past times)."""
        self._past.append(self._plan)
        # A plan installed at an earlier time than the current one (a late watchdog or stall
        # evaluation) supersedes the plans that started after it.
        while self._past and self._past[-1].t_start > t:
            self._past.pop()
        t_end = segments[-1].t_end if segments else t_idle
        self._plan = _Plan(t, tuple(segments), rest, t_end, overshoot)
        self.target = rest
