"""Fixtures: an emulated mount (sim_hardware) on a warped clock shared with the driver."""

from __future__ import annotations

import time

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector

#: simulated seconds per wall second: the conformance suite's ~60 s of motion take ~3 s
RATE = 20.0
SPEED = 6.0  #: deg/s and deg/s^2 of the emulated axes (told to the drivers by URL)
LIMITS = MountLimits(
    az=AxisLimits(-270.0, 270.0, max_speed_deg_s=SPEED, max_accel_deg_s2=SPEED),
    el=AxisLimits(5.0, 90.0, max_speed_deg_s=SPEED, max_accel_deg_s2=SPEED),
)
PARK = AltAz(0.0, 10.0)
#: URL parameters that tell a driver the emulated dynamics
DYNAMICS = f"speed_deg_s={SPEED}&accel_deg_s2={SPEED}"


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
        watchdog_s=2.0,
        faults=faults,
        seed=1,
        name="it-mount",
    )
