"""One mount axis moving on trapezoidal velocity profiles, evaluated analytically in time.

A motion is a list of constant-acceleration segments; the position at any clock time is a
closed-form sum, so the emulator needs no polling loop and a :class:`~drivers.clock.WarpClock`
speeds motion up exactly. A new command in mid-motion replans from the current position and
velocity (decelerating first if the axis moves away from the new target), so the velocity is
continuous, as on a real servo. After a move ends the axis rings down for ``settle_s`` (a
damped overshoot, as a servo loop settles) before it counts as stopped.

Units: degrees, seconds (clock time), deg/s, deg/s².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Overshoot of the ring-down per deg/s of speed before the final deceleration (deg per deg/s).
SETTLE_OVERSHOOT_S = 0.002
#: The ring-down amplitude never exceeds this (deg).
SETTLE_OVERSHOOT_MAX_DEG = 0.005


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
        self._segments: list[Segment] = []
        self._rest = position  #: where the axis ends up
        self._t_end = -math.inf  #: clock time the last segment ends
        self._overshoot = 0.0  #: signed ring-down amplitude after _t_end (deg)
        self.target = position

    # ------------------------------------------------------------------ evaluation

    def at(self, t: float) -> tuple[float, float]:
        """Commanded-profile position (deg) and velocity (deg/s) at clock time ``t``."""
        for seg in self._segments:
            if t < seg.t_end:
                return seg.at(t)
        return self._rest, 0.0

    def actual(self, t: float) -> float:
        """Axis position at ``t`` including the settling ring-down (deg)."""
        p, _ = self.at(t)
        dt = t - self._t_end
        if self._overshoot and 0.0 <= dt < self.settle_s:
            tau = self.settle_s / 4.0
            period = self.settle_s / 2.0
            p += self._overshoot * math.exp(-dt / tau) * math.sin(2.0 * math.pi * dt / period)
        return p

    def moving_at(self, t: float) -> bool:
        """True while on a profile or ringing down."""
        return t < self._t_end + (self.settle_s if self._overshoot else 0.0)

    def end_time(self) -> float:
        """Clock time the axis comes to rest and has settled."""
        return self._t_end + (self.settle_s if self._overshoot else 0.0)

    # ------------------------------------------------------------------ planning

    def move_to(self, t: float, target: float, speed: float | None = None) -> None:
        """Plan a move from the state at ``t`` to rest at ``target`` (speed capped at ``speed``)."""
        vmax = self.max_speed if speed is None else min(max(speed, 1e-9), self.max_speed)
        a = self.max_accel
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
            self._overshoot = direction * min(SETTLE_OVERSHOOT_MAX_DEG, SETTLE_OVERSHOOT_S * v_peak)
        else:
            self._overshoot = 0.0
        self._install(segments, target, t)

    def stop(self, t: float) -> None:
        """Decelerate at the acceleration limit from the state at ``t`` to rest."""
        p, v = self.at(t)
        if v == 0.0:
            self.target = self._rest
            return
        brake = Segment(t, abs(v) / self.max_accel, p, v, -math.copysign(self.max_accel, v))
        self._overshoot = 0.0
        self._install([brake], brake.at(brake.t_end)[0], t)

    def hold(self, t: float) -> None:
        """Stop dead at the position of ``t`` (a stalled motor: no deceleration ramp)."""
        p = self.actual(t)
        self._segments = []
        self._rest = p
        self.target = p
        self._t_end = t
        self._overshoot = 0.0

    def _install(self, segments: list[Segment], rest: float, t: float) -> None:
        self._segments = segments
        self._rest = rest
        self.target = rest
        self._t_end = segments[-1].t_end if segments else t
