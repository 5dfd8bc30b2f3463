"""Behaviour model of a motorised rotation mount carrying a waveplate (no protocol inside).

The model keeps two frames apart, because a real stage does:

- the **physical** frame: the waveplate's true optical angle, 0 deg at the stage's home index.
  The physics world reads :meth:`RotatorModel.angle` (this frame) when it computes what the
  analyzer measures, so an unhomed or misbehaving stage shows up in the correlations.
- the **encoder** frame: what the controller reports. At power-up the encoder reads 0 wherever
  the stage happens to stand (a seeded random angle); homing drives to the index (plus the home
  offset) and zeroes the encoder there. Until then reported and true angles differ.

Motion is a rest-to-rest trapezoidal profile (speed ``max_speed_deg_s`` x the speed fraction,
acceleration ``accel_deg_s2``) evaluated analytically against the injected
:class:`~drivers.clock.Clock`, so a :class:`~drivers.clock.WarpClock` speeds it up. The output
shaft follows the motor through a dead band of ``backlash_deg`` (gear backlash): after a
reversal the optic stays put until the motor has taken up the slack. A
:attr:`~sim_hardware.faults.FaultKind.STALL` fault freezes the motor where it is when the
fault starts; the move then ends as :attr:`MoveOutcome.STALLED`.
"""

from __future__ import annotations

import enum
import logging
import math
import random
from dataclasses import dataclass

from drivers.clock import Clock
from sim_hardware.faults import FaultInjector, FaultKind

log = logging.getLogger(__name__)

#: clock seconds between polls while waiting for a move to end
_POLL_S = 0.01


class MoveOutcome(enum.Enum):
    """How the latest move ended."""

    COMPLETED = "completed"  #: reached its target
    STOPPED = "stopped"  #: interrupted by :meth:`RotatorModel.stop`
    STALLED = "stalled"  #: motor stalled (fault); position frozen short of the target


@dataclass(frozen=True, slots=True)
class _Move:
    """One trapezoidal motor move from ``p0`` to ``p1`` (motor deg) starting at ``t0``."""

    t0: float
    p0: float
    p1: float
    v: float  #: cruise speed (deg/s)
    a: float  #: acceleration (deg/s^2)
    homing: bool

    @property
    def duration(self) -> float:
        d = abs(self.p1 - self.p0)
        if d == 0.0:
            return 0.0
        d_ramp = self.v * self.v / self.a
        if d <= d_ramp:
            return 2.0 * math.sqrt(d / self.a)
        return 2.0 * self.v / self.a + (d - d_ramp) / self.v

    @property
    def t_end(self) -> float:
        return self.t0 + self.duration

    def at(self, t: float) -> float:
        """Motor position (deg) at clock time ``t``."""
        d = abs(self.p1 - self.p0)
        s = math.copysign(1.0, self.p1 - self.p0)
        tau = min(max(t - self.t0, 0.0), self.duration)
        t_ramp = min(self.v / self.a, self.duration / 2.0)
        v_peak = self.a * t_ramp
        if tau <= t_ramp:
            x = 0.5 * self.a * tau * tau
        elif tau <= self.duration - t_ramp:
            x = 0.5 * self.a * t_ramp * t_ramp + v_peak * (tau - t_ramp)
        else:
            rest = self.duration - tau
            x = d - 0.5 * self.a * rest * rest
        return self.p0 + s * min(x, d)


class RotatorModel:
    """A rotation stage: homing, velocity, backlash, encoder counts, stall fault.

    Args:
        clock: time source of the motion.
        counts_per_turn: encoder counts per 360 deg of motor travel.
        max_speed_deg_s: cruise speed at 100 % speed (deg/s).
        accel_deg_s2: acceleration and deceleration (deg/s^2).
        backlash_deg: dead band between motor and optic (deg); 0 for a direct drive.
        home_offset_deg: where homing stops and zeroes the encoder, relative to the index (deg).
        initial_deg: true angle at power-up; None draws one from ``seed``.
        faults: the device's fault schedule (STALL is consulted here).
        seed: seeds the power-up angle.
        name: for log messages.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        counts_per_turn: int = 143_360,
        max_speed_deg_s: float = 430.0,
        accel_deg_s2: float = 4000.0,
        backlash_deg: float = 0.0,
        home_offset_deg: float = 0.0,
        initial_deg: float | None = None,
        faults: FaultInjector | None = None,
        seed: int = 0,
        name: str = "rotator",
    ) -> None:
        if counts_per_turn <= 0:
            raise ValueError(f"counts_per_turn must be > 0, got {counts_per_turn}")
        if max_speed_deg_s <= 0 or accel_deg_s2 <= 0:
            raise ValueError("max_speed_deg_s and accel_deg_s2 must be > 0")
        if backlash_deg < 0:
            raise ValueError(f"backlash_deg must be >= 0, got {backlash_deg}")
        self._clock = clock
        self.counts_per_turn = counts_per_turn
        self.max_speed_deg_s = max_speed_deg_s
        self.accel_deg_s2 = accel_deg_s2
        self.backlash_deg = backlash_deg
        self.home_offset_deg = home_offset_deg
        self.faults = faults
        self.name = name
        start = random.Random(seed).uniform(0.0, 360.0) if initial_deg is None else initial_deg
        self._motor = float(start)  #: motor position when idle (physical frame, unwrapped)
        self._zero = float(start)  #: motor position where the encoder reads 0
        self._out_anchor = float(start)  #: optic angle at the start of the current move
        self._dir = 0.0  #: +1 / -1: direction of the latest motion (0: none yet)
        self._move: _Move | None = None
        self._speed_fraction = 1.0
        self._homed = False
        self.outcome = MoveOutcome.COMPLETED

    # ------------------------------------------------------------------ settings

    @property
    def speed_fraction(self) -> float:
        """Fraction of ``max_speed_deg_s`` used for moves (0 < f <= 1)."""
        return self._speed_fraction

    def set_speed_fraction(self, fraction: float) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"speed fraction must be in (0, 1], got {fraction}")
        self._speed_fraction = fraction

    @property
    def counts_per_deg(self) -> float:
        return self.counts_per_turn / 360.0

    # ------------------------------------------------------------------ state

    @property
    def homed(self) -> bool:
        """Whether a homing move has completed since power-up (or :meth:`lose_reference`)."""
        self._update()
        return self._homed

    def lose_reference(self) -> None:
        """Forget the home reference (controller reset); the encoder keeps counting."""
        self._homed = False

    def _update(self) -> None:
        """Advance the motion to now: finish a move that has ended, apply a stall."""
        move = self._move
        if move is None:
            return
        now = self._clock.now()
        stall = self.faults.active(FaultKind.STALL) if self.faults is not None else None
        if stall is not None and stall.start < move.t_end:
            self._finish(move, move.at(max(stall.start, move.t0)), MoveOutcome.STALLED)
            log.warning("%s: motor stalled at %.3f deg", self.name, self._motor)
        elif now >= move.t_end:
            self._finish(move, move.p1, MoveOutcome.COMPLETED)

    def _finish(self, move: _Move, motor: float, outcome: MoveOutcome) -> None:
        self._out_anchor = self._optic_during(move, motor)
        self._motor = motor
        self._move = None
        self.outcome = outcome
        if move.homing and outcome is MoveOutcome.COMPLETED:
            self._zero = motor
            self._homed = True

    def _optic_during(self, move: _Move, motor: float) -> float:
        """Optic angle for motor position ``motor`` within ``move`` (backlash dead band)."""
        half = self.backlash_deg / 2.0
        d = math.copysign(1.0, move.p1 - move.p0) if move.p1 != move.p0 else self._dir
        if d == 0.0:
            return motor
        if d * (motor - self._out_anchor) >= half:
            return motor - d * half
        return self._out_anchor

    def motor_deg(self) -> float:
        """Motor shaft position in the physical frame (deg, unwrapped)."""
        self._update()
        if self._move is not None:
            return self._move.at(self._clock.now())
        return self._motor

    def angle(self) -> float:
        """True optical angle of the waveplate, physical frame, in [0, 360) deg."""
        self._update()
        if self._move is None:
            return self._out_anchor % 360.0
        return self._optic_during(self._move, self._move.at(self._clock.now())) % 360.0

    def encoder_counts(self) -> int:
        """Encoder reading (counts since the encoder zero); what the controller reports."""
        return round((self.motor_deg() - self._zero) * self.counts_per_deg)

    def position_deg(self) -> float:
        """Reported position (deg) = encoder counts / counts per degree."""
        return self.encoder_counts() / self.counts_per_deg

    def is_moving(self) -> bool:
        self._update()
        return self._move is not None

    def move_end_time(self) -> float | None:
        """Clock time at which the current move will end (None when idle)."""
        self._update()
        return None if self._move is None else self._move.t_end

    # ------------------------------------------------------------------ commands

    def _start(self, target_motor: float, *, homing: bool = False) -> float:
        now = self._clock.now()
        start = self.motor_deg()
        if self._move is not None:  # a new command replaces the current move (no reversal)
            self._finish(self._move, start, MoveOutcome.STOPPED)
        stall = self.faults.active(FaultKind.STALL) if self.faults is not None else None
        v = self.max_speed_deg_s * self._speed_fraction
        move = _Move(now, start, target_motor, v, self.accel_deg_s2, homing)
        if target_motor != start:
            self._dir = math.copysign(1.0, target_motor - start)
        self._move = move
        if stall is not None:
            self._finish(move, start, MoveOutcome.STALLED)
            return 0.0
        self.outcome = MoveOutcome.COMPLETED
        return move.duration

    def move_to(self, position_deg: float) -> float:
        """Move to a reported position (encoder frame, deg); returns the move time (clock s)."""
        return self._start(self._zero + position_deg)

    def move_to_counts(self, counts: int) -> float:
        """Move to an absolute encoder count; returns the move time (clock s)."""
        return self._start(self._zero + counts / self.counts_per_deg)

    def move_by(self, delta_deg: float) -> float:
        """Move by ``delta_deg`` from the current position; returns the move time (clock s)."""
        return self._start(self.motor_deg() + delta_deg)

    def home(self, direction: int = 1) -> float:
        """Drive to the next index (+ home offset) in ``direction`` (+1 / -1), zero the encoder.

        Returns the move time (clock s).
        """
        here = self.motor_deg()
        turns = (here - self.home_offset_deg) / 360.0
        k = math.ceil(turns - 1e-9) if direction >= 0 else math.floor(turns + 1e-9)
        return self._start(self.home_offset_deg + 360.0 * k, homing=True)

    def stop(self) -> None:
        """Stop at once (the stages modelled here decelerate in well under a poll period)."""
        self._update()
        if self._move is not None:
            self._finish(self._move, self._move.at(self._clock.now()), MoveOutcome.STOPPED)

    async def wait_idle(self) -> MoveOutcome:
        """Wait (clock time) until the current move ends; return how it ended."""
        while True:
            end = self.move_end_time()
            if end is None:
                return self.outcome
            await self._clock.sleep(min(max(end - self._clock.now(), 0.0), _POLL_S) + 1e-6)
