"""RotatorModel: trapezoidal motion, homing frames, backlash, stall (clock-driven)."""

from __future__ import annotations

import pytest

from drivers.clock import WarpClock
from sim_hardware.devices.rotator import MoveOutcome, RotatorModel
from sim_hardware.faults import FaultInjector, FaultKind


class ManualClock(WarpClock):
    """A clock that only moves when told (so motion can be sampled at exact times)."""

    def __init__(self, t: float = 1000.0) -> None:
        super().__init__(t, rate=1.0)
        self.t = t

    def now(self) -> float:
        return self.t


def test_move_follows_trapezoid_and_ends_at_target() -> None:
    clock = ManualClock()
    rot = RotatorModel(clock, initial_deg=0.0, max_speed_deg_s=100.0, accel_deg_s2=400.0)
    duration = rot.move_to(90.0)
    # ramp 0.25 s covers 12.5 deg each side; 65 deg cruise at 100 deg/s -> 0.65 s
    assert duration == pytest.approx(0.5 + 0.65)
    clock.t += 0.25
    assert rot.angle() == pytest.approx(12.5)
    assert rot.is_moving()
    clock.t += duration
    assert not rot.is_moving()
    assert rot.angle() == pytest.approx(90.0)
    assert rot.encoder_counts() == round(90.0 * 143360 / 360)
    assert rot.outcome is MoveOutcome.COMPLETED


def test_power_up_encoder_frame_differs_until_homed() -> None:
    clock = ManualClock()
    rot = RotatorModel(clock, initial_deg=37.0, home_offset_deg=0.0)
    assert rot.position_deg() == 0.0  # encoder reads 0 wherever it powered up
    assert rot.angle() == pytest.approx(37.0)
    assert not rot.homed
    clock.t += rot.home(1) + 1e-6
    assert rot.homed
    assert rot.angle() == pytest.approx(0.0, abs=1e-9) or rot.angle() == pytest.approx(360.0)
    assert rot.position_deg() == 0.0
    clock.t += rot.move_to(45.0) + 1e-6
    assert rot.angle() == pytest.approx(45.0)  # frames agree after homing


def test_backlash_holds_optic_after_reversal() -> None:
    clock = ManualClock()
    rot = RotatorModel(clock, initial_deg=0.0, backlash_deg=2.0)
    clock.t += rot.move_to(30.0) + 1e-6
    assert rot.angle() == pytest.approx(29.0)  # trails the motor by half the dead band
    clock.t += rot.move_to(29.5) + 1e-6  # reversal smaller than the dead band: optic stays
    assert rot.angle() == pytest.approx(29.0)
    clock.t += rot.move_to(20.0) + 1e-6
    assert rot.angle() == pytest.approx(21.0)


def test_stall_freezes_motion_and_reports_stalled() -> None:
    clock = ManualClock()
    faults = FaultInjector(clock, "hwp")
    rot = RotatorModel(
        clock, initial_deg=0.0, max_speed_deg_s=100.0, accel_deg_s2=1e6, faults=faults
    )
    rot.move_to(90.0)
    faults.inject(FaultKind.STALL, at=clock.t + 0.3, duration=5.0)
    clock.t += 0.5
    assert not rot.is_moving()
    assert rot.outcome is MoveOutcome.STALLED
    assert rot.angle() == pytest.approx(30.0, abs=0.1)


async def test_wait_idle_and_stop_with_warp_clock() -> None:
    clock = WarpClock(1000.0, rate=20.0)
    rot = RotatorModel(clock, initial_deg=0.0, max_speed_deg_s=50.0)
    rot.move_to(20.0)
    assert await rot.wait_idle() is MoveOutcome.COMPLETED
    assert rot.position_deg() == pytest.approx(20.0, abs=0.01)
    rot.move_to(200.0)
    await clock.sleep(0.5)
    rot.stop()
    assert await rot.wait_idle() is MoveOutcome.STOPPED
    assert 20.0 < rot.position_deg() < 200.0


def test_bad_parameters_are_rejected() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="counts_per_turn"):
        RotatorModel(clock, counts_per_turn=0)
    rot = RotatorModel(clock)
    with pytest.raises(ValueError, match="speed fraction"):
        rot.set_speed_fraction(0.0)
