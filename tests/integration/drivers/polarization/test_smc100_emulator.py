"""SMC100Rotator against the SMC100 emulator on a pty, through pyvisa-py (ASRL resource)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from drivers.clock import WarpClock
from drivers.errors import DeviceFault, DeviceTimeout, LimitViolation
from drivers.polarization.smc100 import SMC100Rotator
from drivers.registry import open_device
from drivers.testing.conformance import rotator_conformance
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.smc100 import SMC100Controller, SMC100Line


@dataclass
class Line:
    clock: WarpClock
    model: RotatorModel
    url: str
    faults: FaultInjector


@contextlib.asynccontextmanager
async def serve_smc100(rate: float = 5.0) -> AsyncIterator[Line]:
    clock = WarpClock(time.time(), rate=rate)
    faults = FaultInjector(clock, "smc100")
    model = RotatorModel(clock, seed=3, max_speed_deg_s=200.0, faults=faults, name="smc-stage")
    # a continuous rotation stage configured for one full turn of travel
    ctl = SMC100Controller(model, min_deg=-1.0, max_deg=361.0)
    handler = SMC100Line(clock, {1: ctl}, faults=faults)
    async with PtyServer(handler, name="smc100", clock=clock, faults=faults) as server:
        yield Line(clock, model, f"smc100+visa://ASRL{server.path}::INSTR", faults)


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    async with serve_smc100() as served:
        yield served


async def test_conformance_over_pyvisa_asrl(line: Line) -> None:
    stage = open_device(line.url, line.clock)
    assert isinstance(stage, SMC100Rotator)
    await rotator_conformance(stage, clock=line.clock)


async def test_move_refused_before_homing_then_stall_is_a_fault(line: Line) -> None:
    stage = open_device(line.url, line.clock)
    await stage.connect()
    try:
        with pytest.raises(DeviceFault, match="NOT REFERENCED"):
            await stage.move_to(10.0)
        await stage.home()
        assert line.model.homed
        line.faults.inject(FaultKind.STALL, duration=60.0)
        with pytest.raises(DeviceFault, match="following error"):
            await stage.move_to(90.0)
    finally:
        line.faults.clear()
        await stage.close()


async def test_out_of_limits_is_refused(line: Line) -> None:
    stage = SMC100Rotator(url=line.url, clock=line.clock, transport_url=line.url.split("+", 1)[1])
    await stage.connect()
    try:
        stage.limits_deg = (-10.0, 10.0)  # narrower than the controller's: refused locally
        with pytest.raises(LimitViolation):
            await stage.move_to(90.0)
    finally:
        await stage.close()


async def test_hung_controller_times_out_on_every_path() -> None:
    async with serve_smc100(rate=10.0) as line:  # warped: homing takes little wall time
        stage = open_device(line.url + "?timeout_s=0.2", line.clock)
        line.faults.inject(FaultKind.HANG)  # requests are read, never answered
        with pytest.raises(DeviceTimeout, match="'ID\\?'"):
            await stage.connect()
        line.faults.clear()
        await stage.connect()
        try:
            await stage.home()
            line.faults.inject(FaultKind.HANG)
            with pytest.raises(DeviceTimeout, match="no reply to 'TP', nor to the TE"):
                await stage.angle()
            with pytest.raises(DeviceTimeout):
                await stage.move_to(30.0)
            with pytest.raises(DeviceTimeout, match="'TE'"):
                await stage.stop()
            line.faults.clear()
            await stage.move_to(45.0)  # the same driver talks again once the line answers
            assert await stage.angle() == pytest.approx(45.0, abs=0.01)
        finally:
            line.faults.clear()
            await stage.close()
