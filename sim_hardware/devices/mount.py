"""Behaviour model of an az/el telescope mount (no wire protocol inside).

What a real mount controller does, as seen from its front-ends (rotctld, LX200):

- two axes with speed and acceleration limits on trapezoidal profiles, a settling ring-down
  after each move (:mod:`sim_hardware.devices.axis`), evaluated at ``clock.now()``;
- firmware limits it refuses to cross: a target outside :class:`MountLimits` raises
  :class:`LimitViolation` and nothing moves (azimuth may run past 0..360 within the cable wrap,
  e.g. -270..270; elevation up to 90, or 180 on an over-the-top mount);
- encoder quantization (what the protocols report) and a small seeded servo jitter on the
  true pointing (what the physics world uses for the pointing loss, also at past instants:
  :meth:`MountModel.position_at`);
- park and home positions, stop, jog (constant-speed move towards a limit);
- a program-track watchdog: once set-position commands arrive as a stream (three or more,
  each within ``watchdog_s`` of the previous), a gap longer than ``watchdog_s`` stops the axes,
  as antenna control units do when the tracking computer dies;
- the ``stall`` fault: both axes stop dead where they were when it began and the state is
  FAULT until the fault clears.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from drivers.clock import Clock
from drivers.datatypes import AltAz, MountLimits, MountState, MountStatus
from drivers.errors import ConfigError, DeviceFault, LimitViolation
from sim_hardware.devices.axis import AxisMotion
from sim_hardware.faults import FaultInjector, FaultKind

log = logging.getLogger(__name__)

#: Number of sinusoids summed for the servo jitter (a smooth, seeded random wander).
JITTER_TERMS = 6
#: Jitter frequencies are drawn from this band (Hz, clock time): servo/wind shake.
JITTER_BAND_HZ = (0.2, 5.0)
#: Set-position commands in a row (each within watchdog_s) that count as program tracking.
TRACKING_MIN_COMMANDS = 3


class MountModel:
    """An emulated az/el mount.

    Args:
        clock: time source for motion (a WarpClock speeds everything up).
        limits: firmware axis limits and dynamics.
        park: park position (also the power-on position).
        home: home position (default: azimuth 0 at the park elevation).
        settle_s: ring-down time after each move (clock s).
        encoder_resolution_deg: encoder quantum of the reported position (deg).
        tracking_jitter_deg: RMS servo jitter of the true pointing per axis (deg).
        watchdog_s: program-track watchdog timeout (clock s); None disables it.
        faults: the device's fault schedule (stall is handled here).
        seed: seed of the jitter (deterministic runs).
        name: device name for logs and error messages.

    Raises :class:`ConfigError` (a ValueError) if the park or home position is outside the
    limits.
    """

    def __init__(
        self,
        clock: Clock,
        limits: MountLimits,
        *,
        park: AltAz,
        home: AltAz | None = None,
        settle_s: float = 0.5,
        encoder_resolution_deg: float = 1.0 / 3600.0,
        tracking_jitter_deg: float = 0.0,
        watchdog_s: float | None = 2.0,
        faults: FaultInjector | None = None,
        seed: int = 0,
        name: str = "mount",
    ) -> None:
        self.clock = clock
        self.limits = limits
        self.park_position = park
        self.home_position = home if home is not None else AltAz(0.0, park.el_deg)
        for key, where in (("park", park), ("home", self.home_position)):
            try:
                limits.check(where, device=name)
            except LimitViolation as exc:
                raise ConfigError(f"{name} {key} position: {exc.message}", key=key) from None
        self.encoder_resolution_deg = encoder_resolution_deg
        self.watchdog_s = watchdog_s
        self.faults = faults
        self.name = name
        self._az = AxisMotion(
            park.az_deg,
            max_speed=limits.az.max_speed_deg_s,
            max_accel=limits.az.max_accel_deg_s2,
            settle_s=settle_s,
        )
        self._el = AxisMotion(
            park.el_deg,
            max_speed=limits.el.max_speed_deg_s,
            max_accel=limits.el.max_accel_deg_s2,
            settle_s=settle_s,
        )
        rng = np.random.default_rng(seed)
        # Each sinusoid carries an equal share of the variance: RMS = jitter per axis.
        amp = tracking_jitter_deg * math.sqrt(2.0 / JITTER_TERMS)
        self._jitter = [
            (
                amp,
                rng.uniform(*JITTER_BAND_HZ, JITTER_TERMS),
                rng.uniform(0.0, 2.0 * math.pi, JITTER_TERMS),
            )
            for _axis in range(2)
        ]
        self._parking = True  # power-on: sitting at the park position
        self._stalled_since: float | None = None
        self._last_update = clock.now()
        self._last_command: float | None = None
        self._stream_count = 0
        self._tracking = False
        self._watchdog_trips = 0

    # ------------------------------------------------------------------ events in time

    def _update(self) -> float:
        """Apply the watchdog and the stall fault up to now; returns now."""
        now = self.clock.now()
        if (
            self._tracking
            and self.watchdog_s is not None
            and self._last_command is not None
            and now >= self._last_command + self.watchdog_s
        ):
            t_trip = max(self._last_command + self.watchdog_s, self._last_update)
            self._az.stop(t_trip)
            self._el.stop(t_trip)
            self._tracking = False
            self._stream_count = 0
            self._watchdog_trips += 1
            log.warning(
                "%s: no position command for %.2f s while tracking; watchdog stopped the axes",
                self.name,
                self.watchdog_s,
            )
        stall = self.faults.active(FaultKind.STALL) if self.faults is not None else None
        if stall is not None and self._stalled_since is None:
            t_stall = max(stall.start, self._last_update)
            self._az.hold(t_stall)
            self._el.hold(t_stall)
            self._stalled_since = t_stall
            self._tracking = False
            self._parking = False
            log.warning("%s: motor stall at %.3f; axes stopped", self.name, t_stall)
        elif stall is None and self._stalled_since is not None:
            self._stalled_since = None
            log.info("%s: stall cleared", self.name)
        self._last_update = now
        return now

    # ------------------------------------------------------------------ readings

    def _axis_position(self, t: float) -> AltAz:
        return AltAz(self._az.actual(t), self._el.actual(t))

    def _jitter_at(self, t: float) -> tuple[float, float]:
        out = []
        for amp, freq, phase in self._jitter:
            out.append(float(amp * np.sum(np.sin(2.0 * math.pi * freq * t + phase))))
        return out[0], out[1]

    def position(self) -> AltAz:
        """True pointing (deg): axis position plus servo jitter (what the physics world uses)."""
        now = self._update()
        axis = self._axis_position(now)
        jaz, jel = self._jitter_at(now)
        return AltAz(axis.az_deg + jaz, axis.el_deg + jel)

    def position_at(self, t: float) -> AltAz:
        """True pointing (deg) at clock time ``t`` <= now (later times are taken as now).

        Exact for the recent past even if commands arrived since (the axes keep their
        superseded plans, :data:`~sim_hardware.devices.axis.PLAN_HISTORY` of them): the
        physics world asks for the pointing in the middle of each event slice it generates,
        which under back-pressure can be well after the slice.
        """
        now = self._update()
        t = min(t, now)
        jaz, jel = self._jitter_at(t)
        return AltAz(self._az.actual(t) + jaz, self._el.actual(t) + jel)

    def encoder_position(self) -> AltAz:
        """Encoder reading (deg): the axis position quantized to the encoder resolution."""
        now = self._update()
        axis = self._axis_position(now)
        q = self.encoder_resolution_deg
        if q <= 0:
            return axis
        return AltAz(round(axis.az_deg / q) * q, round(axis.el_deg / q) * q)

    def velocity(self) -> tuple[float, float]:
        """Commanded axis speeds now (deg/s): (azimuth, elevation)."""
        now = self._update()
        return self._az.at(now)[1], self._el.at(now)[1]

    @property
    def target(self) -> AltAz:
        """Where the axes are going (or stopped)."""
        self._update()
        return AltAz(self._az.target, self._el.target)

    def is_moving(self) -> bool:
        now = self._update()
        return self._az.moving_at(now) or self._el.moving_at(now)

    @property
    def watchdog_trips(self) -> int:
        """How often the program-track watchdog has stopped the axes."""
        self._update()
        return self._watchdog_trips

    @property
    def stalled(self) -> bool:
        self._update()
        return self._stalled_since is not None

    @property
    def state(self) -> MountState:
        now = self._update()
        if self._stalled_since is not None:
            return MountState.FAULT
        moving = self._az.moving_at(now) or self._el.moving_at(now)
        if self._parking and not moving:
            return MountState.PARKED
        if self._tracking:
            return MountState.TRACKING
        return MountState.SLEWING if moving else MountState.IDLE

    def status(self) -> MountStatus:
        state = self.state
        return MountStatus(
            state=state,
            position=self.encoder_position(),
            target=self.target,
            fault="motor stall" if state is MountState.FAULT else None,
        )

    # ------------------------------------------------------------------ commands

    def _check_not_stalled(self) -> None:
        if self._stalled_since is not None:
            raise DeviceFault(
                "motor stall: axes are stopped and do not accept motion commands",
                device=self.name,
                hint="clear the stall before commanding motion",
            )

    def command(self, target: AltAz) -> None:
        """Go to ``target`` (one goto, or one sample of a program-track stream).

        Raises :class:`LimitViolation` (nothing moves) if ``target`` is outside the firmware
        limits, :class:`DeviceFault` while stalled.
        """
        now = self._update()
        self._check_not_stalled()
        self.limits.check(target, device=self.name)
        if self._last_command is not None and self.watchdog_s is not None:
            if now - self._last_command <= self.watchdog_s:
                self._stream_count += 1
            else:
                self._stream_count = 1
        else:
            self._stream_count = 1
        self._last_command = now
        self._tracking = self.watchdog_s is not None and self._stream_count >= TRACKING_MIN_COMMANDS
        self._parking = False
        self._az.move_to(now, target.az_deg)
        self._el.move_to(now, target.el_deg)

    def jog(self, d_az: int, d_el: int, speed_fraction: float) -> None:
        """Move at ``speed_fraction`` (0..1] of full speed towards the limits in the given
        directions (-1, 0, +1 per axis) until stopped or the limit is reached."""
        now = self._update()
        self._check_not_stalled()
        frac = min(max(speed_fraction, 0.0), 1.0)
        if frac == 0.0:
            raise ValueError("jog speed must be > 0")
        self._tracking = False
        self._stream_count = 0
        self._parking = False
        for axis, direction, lim in (
            (self._az, d_az, self.limits.az),
            (self._el, d_el, self.limits.el),
        ):
            if direction:
                end = lim.max_deg if direction > 0 else lim.min_deg
                axis.move_to(now, end, speed=frac * lim.max_speed_deg_s)

    def stop(self) -> None:
        """Decelerate both axes to rest (also ends program tracking)."""
        now = self._update()
        self._tracking = False
        self._stream_count = 0
        self._az.stop(now)
        self._el.stop(now)

    def park(self) -> None:
        """Slew to the park position; the state is PARKED once there."""
        self._goto_fixed(self.park_position)
        self._parking = True

    def home(self) -> None:
        """Slew to the home position."""
        self._goto_fixed(self.home_position)

    def unpark(self) -> None:
        """Leave the parked state (the axes stay where they are)."""
        self._update()
        self._parking = False

    def reset(self) -> None:
        """Controller reset: stop the axes and forget the program-track stream."""
        self.stop()
        self._last_command = None

    def _goto_fixed(self, where: AltAz) -> None:
        now = self._update()
        self._check_not_stalled()
        self._tracking = False
        self._stream_count = 0
        self._last_command = None
        self._parking = False
        self._az.move_to(now, where.az_deg)
        self._el.move_to(now, where.el_deg)

    def time_to_arrive(self) -> float:
        """Clock seconds until both axes are at rest and settled (0 if already)."""
        now = self._update()
        return max(0.0, self._az.end_time() - now, self._el.end_time() - now)
