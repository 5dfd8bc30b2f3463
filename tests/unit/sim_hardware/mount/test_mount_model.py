"""Behaviour of the mount model, on a hand-stepped clock so the motion law is checked exactly."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from drivers.datatypes import AltAz, AxisLimits, MountLimits, MountState
from drivers.errors import ConfigError, DeviceFault, LimitViolation
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector, FaultKind

LIMITS = MountLimits(
    az=AxisLimits(-270.0, 270.0, max_speed_deg_s=2.0, max_accel_deg_s2=1.0),
    el=AxisLimits(0.0, 90.0, max_speed_deg_s=2.0, max_accel_deg_s2=1.0),
)


class SteppedClock:
    """A clock the test advances by hand (the model only reads ``now``)."""

    rate = 1.0

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)

    def to_wall(self, seconds: float) -> float:
        return seconds


def make(
    clock: SteppedClock, *, jitter: float = 0.0, watchdog: float | None = 2.0, seed: int = 0
) -> tuple[MountModel, FaultInjector]:
    faults = FaultInjector(clock, "m")
    model = MountModel(
        clock,
        LIMITS,
        park=AltAz(0.0, 0.0),
        settle_s=0.5,
        encoder_resolution_deg=0.01,
        tracking_jitter_deg=jitter,
        watchdog_s=watchdog,
        faults=faults,
        seed=seed,
    )
    return model, faults


def test_starts_parked_at_park_position() -> None:
    model, _ = make(SteppedClock())
    assert model.state is MountState.PARKED
    assert model.encoder_position() == AltAz(0.0, 0.0)


def test_slew_follows_trapezoid_and_settles_on_target() -> None:
    clock = SteppedClock()
    model, _ = make(clock)
    model.command(AltAz(30.0, 0.0))
    expected = LIMITS.az.move_time_s(30.0)  # 2 s ramp (2 deg) + 13 s cruise + 2 s ramp
    assert expected == pytest.approx(17.0)
    clock.t += 1.0  # mid-acceleration: x = a t^2 / 2
    assert model.position().az_deg == pytest.approx(0.5, abs=1e-9)
    assert model.state is MountState.SLEWING
    clock.t += 9.0  # t=10: 2 deg ramp + 8 s cruise at 2 deg/s
    assert model.position().az_deg == pytest.approx(18.0, abs=1e-9)
    assert model.velocity()[0] == pytest.approx(2.0)
    clock.t = 1000.0 + expected + 0.1  # moved, still ringing down
    assert model.is_moving()
    assert abs(model.position().az_deg - 30.0) < 0.01
    clock.t = 1000.0 + expected + 0.6
    assert not model.is_moving()
    assert model.state is MountState.IDLE
    assert model.encoder_position() == AltAz(30.0, 0.0)


def test_retarget_mid_motion_keeps_velocity_continuous() -> None:
    clock = SteppedClock()
    model, _ = make(clock)
    model.command(AltAz(50.0, 0.0))
    clock.t += 5.0
    v_before = model.velocity()[0]
    model.command(AltAz(-20.0, 0.0))  # reverse: must brake, not jump
    assert model.velocity()[0] == pytest.approx(v_before)
    clock.t += 0.5
    assert model.velocity()[0] == pytest.approx(v_before - 0.5)
    clock.t += model.time_to_arrive() + 0.01
    assert model.encoder_position().az_deg == pytest.approx(-20.0)


@pytest.mark.parametrize("target", [AltAz(300.0, 10.0), AltAz(10.0, -1.0), AltAz(0.0, 91.0)])
def test_refuses_targets_outside_firmware_limits(target: AltAz) -> None:
    clock = SteppedClock()
    model, _ = make(clock)
    with pytest.raises(LimitViolation, match="outside the allowed range"):
        model.command(target)
    clock.t += 5.0
    assert model.encoder_position() == AltAz(0.0, 0.0)


def test_accepts_azimuth_inside_the_cable_wrap_beyond_360() -> None:
    clock = SteppedClock()
    model, _ = make(clock)
    model.command(AltAz(-200.0, 10.0))
    clock.t += model.time_to_arrive() + 0.01
    assert model.encoder_position() == AltAz(-200.0, 10.0)


def test_encoder_quantizes_and_jitter_is_seeded_with_set_rms() -> None:
    clock = SteppedClock()
    model, _ = make(clock, jitter=0.002, seed=7)
    twin, _ = make(SteppedClock(), jitter=0.002, seed=7)
    samples = []
    for _ in range(2000):
        clock.t += 0.137
        twin.clock.t = clock.t  # type: ignore[attr-defined]
        pos = model.position()
        assert pos == twin.position()  # same seed, same wander
        samples.append(pos.az_deg)
        enc = model.encoder_position()
        assert enc.az_deg == pytest.approx(round(enc.az_deg / 0.01) * 0.01, abs=1e-12)
    rms = float(np.sqrt(np.mean(np.square(samples))))
    assert 0.0012 < rms < 0.0028
    assert model.encoder_position() == AltAz(0.0, 0.0)  # jitter is below the encoder quantum


def test_stop_decelerates_at_the_acceleration_limit() -> None:
    clock = SteppedClock()
    model, _ = make(clock)
    model.command(AltAz(80.0, 0.0))
    clock.t += 10.0
    pos, v = model.position().az_deg, model.velocity()[0]
    model.stop()
    clock.t += 10.0
    assert model.position().az_deg == pytest.approx(pos + v * v / 2.0)
    assert model.state is MountState.IDLE


def test_park_goes_to_park_position_and_reports_parked() -> None:
    clock = SteppedClock()
    model, _ = make(clock)
    model.command(AltAz(20.0, 30.0))
    clock.t += 60.0
    model.park()
    assert model.state is MountState.SLEWING
    clock.t += model.time_to_arrive() + 0.01
    assert model.state is MountState.PARKED
    assert model.encoder_position() == AltAz(0.0, 0.0)
    model.home()
    clock.t += model.time_to_arrive() + 0.01
    assert model.state is MountState.IDLE


def test_watchdog_stops_axes_when_program_track_commands_stop() -> None:
    clock = SteppedClock()
    model, _ = make(clock, watchdog=2.0)
    for i in range(5):  # a program-track stream at 2 Hz
        model.command(AltAz(0.5 * i, 20.0))
        clock.t += 0.5
    model.command(AltAz(200.0, 20.0))  # last sample far away, then silence
    assert model.state is MountState.TRACKING
    clock.t += 1.9
    assert model.velocity()[0] > 0
    clock.t += 0.2  # 2.1 s since the last command
    assert model.watchdog_trips == 1
    clock.t += 10.0
    assert not model.is_moving()
    assert model.encoder_position().az_deg < 20.0  # stopped far short of 200
    assert model.state is MountState.IDLE


def test_single_goto_is_not_stopped_by_the_watchdog() -> None:
    clock = SteppedClock()
    model, _ = make(clock, watchdog=2.0)
    model.command(AltAz(60.0, 20.0))
    clock.t += model.time_to_arrive() + 0.01
    assert model.watchdog_trips == 0
    assert model.encoder_position() == AltAz(60.0, 20.0)


def test_stall_fault_stops_axes_and_reports_fault_until_cleared() -> None:
    clock = SteppedClock()
    model, faults = make(clock)
    model.command(AltAz(60.0, 20.0))
    clock.t += 5.0
    faults.inject(FaultKind.STALL, duration=10.0)
    stalled_at = model.position()
    clock.t += 3.0
    assert model.state is MountState.FAULT
    assert model.status().fault == "motor stall"
    assert model.position() == stalled_at
    with pytest.raises(DeviceFault, match="stall"):
        model.command(AltAz(10.0, 10.0))
    clock.t += 10.0
    assert model.state is MountState.IDLE
    model.command(AltAz(10.0, 10.0))
    clock.t += model.time_to_arrive() + 0.01
    assert model.encoder_position() == AltAz(10.0, 10.0)


def test_jog_stops_at_the_limit() -> None:
    clock = SteppedClock()
    model, _ = make(clock)
    model.jog(0, 1, 0.5)
    clock.t += 1.0
    assert model.velocity()[1] == pytest.approx(1.0)  # capped at half speed
    clock.t += 200.0
    assert model.encoder_position().el_deg == pytest.approx(90.0)
    assert not math.isnan(model.position().az_deg)


def test_park_outside_limits_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"park position: elevation -5\.0000 deg is outside"):
        MountModel(SteppedClock(), LIMITS, park=AltAz(0.0, -5.0))


def test_position_at_past_times_survives_later_commands() -> None:
    """The world asks where the mount pointed in the middle of a slice generated later
    (after newer commands): the superseded plans still answer for their own time."""
    clock = SteppedClock()
    model, _ = make(clock, jitter=0.001, seed=3)
    model.command(AltAz(10.0, 20.0))
    recorded = []
    for _ in range(40):  # a 10 Hz command stream that keeps retargeting
        clock.t += 0.1
        recorded.append((clock.t, model.position()))
        model.command(AltAz(10.0 + 0.5 * (clock.t - 1000.0), 20.0 + 0.2 * (clock.t - 1000.0)))
    clock.t += 0.05
    model.stop()
    clock.t += 3.0
    for t, then in recorded:
        again = model.position_at(t)
        assert again.az_deg == pytest.approx(then.az_deg, abs=1e-12)
        assert again.el_deg == pytest.approx(then.el_deg, abs=1e-12)
    # Between two commands, too: the plan in force at that time, not the current one.
    t_mid = recorded[10][0] + 0.05
    assert model.position_at(t_mid).separation_deg(model.position()) > 1.0
    # Times in the future are taken as now; before the first command: the park position.
    assert model.position_at(clock.t + 100.0) == model.position()
    assert model.position_at(999.0).separation_deg(AltAz(0.0, 0.0)) < 0.01
