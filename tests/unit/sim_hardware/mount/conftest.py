"""Fixtures for the emulated-mount tests: a mount model on a fast warped clock."""

from __future__ import annotations

import time

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector

#: Simulated seconds per wall second in server tests: a 10 s slew takes 0.2 s.
RATE = 50.0

LIMITS = MountLimits(
    az=AxisLimits(-270.0, 270.0, max_speed_deg_s=5.0, max_accel_deg_s2=5.0),
    el=AxisLimits(5.0, 90.0, max_speed_deg_s=5.0, max_accel_deg_s2=5.0),
)
PARK = AltAz(0.0, 10.0)


@pytest.fixture
def clock() -> WarpClock:
    return WarpClock(epoch=1_700_000_000.0, anchor=time.time(), rate=RATE)


@pytest.fixture
def faults(clock: WarpClock) -> FaultInjector:
    return FaultInjector(clock, "mount")


@pytest.fixture
def model(clock: WarpClock, faults: FaultInjector) -> MountModel:
    return MountModel(
        clock,
        LIMITS,
        park=PARK,
        settle_s=0.2,
        encoder_resolution_deg=1.0 / 3600.0,
        tracking_jitter_deg=0.0,
        watchdog_s=2.0,
        faults=faults,
        seed=1,
        name="test-mount",
    )
