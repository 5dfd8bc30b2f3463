"""ElliptecRotator and Analyzer against the ELL14 emulator on a real pty (serial transport)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AnalyzerMode
from drivers.errors import DeviceFault, DeviceTimeout
from drivers.polarization.analyzer import analyzer_from_config
from drivers.polarization.elliptec import ElliptecRotator
from drivers.registry import open_device
from drivers.testing.conformance import analyzer_conformance, rotator_conformance
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.elliptec import ElliptecBus, ElliptecDevice
from sim_hardware.servers.pty import PtyServer


@dataclass
class Bench:
    clock: WarpClock
    models: dict[int, RotatorModel]
    path: str
    faults: FaultInjector

    def url(self, address: int) -> str:
        return f"elliptec+serial://{self.path}?address={address:X}"


@contextlib.asynccontextmanager
async def serve_ell14(rate: float = 5.0) -> AsyncIterator[Bench]:
    """Two ELL14 mounts (addresses 0 and 2) on one emulated bus on a pty."""
    clock = WarpClock(time.time(), rate=rate)
    faults = FaultInjector(clock, "ell14")
    models = {
        0: RotatorModel(clock, seed=1, faults=faults, name="hwp0"),
        2: RotatorModel(clock, seed=2, counts_per_turn=262_144, name="hwp2"),
    }
    bus = ElliptecBus(clock, {a: ElliptecDevice(m) for a, m in models.items()}, faults=faults)
    async with PtyServer(bus, name="ell14", clock=clock, faults=faults) as server:
        yield Bench(clock, models, server.path, faults)


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async with serve_ell14() as b:
        yield b


async def test_conformance_over_pty(bench: Bench) -> None:
    rotator = open_device(bench.url(0), bench.clock)
    assert isinstance(rotator, ElliptecRotator)
    await rotator_conformance(rotator, clock=bench.clock)


async def test_second_address_with_other_counts_per_turn(bench: Bench) -> None:
    rotator = open_device(bench.url(2), bench.clock)
    await rotator.connect()
    try:
        assert rotator.info.pulses == 262_144  # read from `in`, not assumed
        await rotator.home()
        await rotator.move_to(123.4)
        assert await rotator.angle() == pytest.approx(123.4, abs=0.01)
        assert bench.models[2].position_deg() == pytest.approx(123.4, abs=0.01)
        assert bench.models[0].is_moving() is False
    finally:
        await rotator.close()


async def test_analyzer_compensation_sets_the_emulated_plate(bench: Bench) -> None:
    config = {
        "hwp": bench.url(0),
        "channels": {"h": 1, "v": 2, "d": 3, "a": 4},
        "offset_deg": 5.0,
    }
    analyzer = analyzer_from_config(config, clock=bench.clock)
    await analyzer.connect()
    try:
        await analyzer.hwp.home()
        model = bench.models[0]
        for theta, plate in ((40.0, 25.0), (-100.0, 135.0), (400.0, 25.0)):
            commanded = await analyzer.compensate(theta)
            assert commanded % 180.0 == pytest.approx(plate)
            # the emulator's true optic angle (physical frame, homed at 0) agrees mod 180
            assert model.angle() % 180.0 == pytest.approx(plate, abs=0.01)
        await analyzer.set_mode(AnalyzerMode.BELL)  # re-applies theta = 400 with +11.25
        assert model.angle() % 180.0 == pytest.approx(36.25, abs=0.01)
        assert await analyzer.hwp_angle() % 180.0 == pytest.approx(36.25, abs=0.01)
    finally:
        await analyzer.close()


async def test_analyzer_conformance_over_pty(bench: Bench) -> None:
    config = {"hwp": bench.url(2), "channels": {"h": 4, "v": 3, "d": 2, "a": 1}, "offset_deg": -7.5}
    analyzer = analyzer_from_config(config, clock=bench.clock)
    await analyzer.hwp.connect()
    await analyzer.hwp.home()
    await analyzer_conformance(analyzer, clock=bench.clock)
    # the suite ends in key mode at theta = -100: plate at -50 - 7.5 (mod 180) on the emulator
    assert bench.models[2].angle() % 180.0 == pytest.approx(122.5, abs=0.01)


async def test_stall_fault_is_a_typed_error(bench: Bench) -> None:
    rotator = open_device(bench.url(0), bench.clock)
    await rotator.connect()
    try:
        await rotator.home()
        bench.faults.inject(FaultKind.STALL, duration=60.0)
        with pytest.raises(DeviceTimeout, match="mechanical timeout"):
            await rotator.move_to(90.0)
    finally:
        bench.faults.clear()
        await rotator.close()


async def test_error_reply_fault_is_a_typed_error(bench: Bench) -> None:
    rotator = open_device(bench.url(0), bench.clock)
    await rotator.connect()
    try:
        bench.faults.inject(FaultKind.ERROR_REPLY, duration=60.0, code=13)
        with pytest.raises(DeviceFault, match="over-current"):
            await rotator.angle()
    finally:
        bench.faults.clear()
        await rotator.close()


async def test_hung_device_times_out_on_every_path() -> None:
    # A warped clock (x10) keeps the computed move bound short in wall time.
    async with serve_ell14(rate=10.0) as bench:
        rotator = open_device(bench.url(0) + "&timeout_s=0.2", bench.clock)
        bench.faults.inject(FaultKind.HANG)  # requests are read, never answered
        with pytest.raises(DeviceTimeout, match="'in'"):
            await rotator.connect()
        bench.faults.clear()
        await rotator.connect()
        try:
            await rotator.home()
            bench.faults.inject(FaultKind.HANG)
            with pytest.raises(DeviceTimeout, match="'gp'"):
                await rotator.angle()
            # a move waits for its PO reply: bounded by distance / speed, then stopped
            with pytest.raises(DeviceTimeout, match="end of move"):
                await rotator.move_to(20.0)
            bench.faults.clear()
            await rotator.move_to(40.0)  # the line resynchronised: it works again
            assert await rotator.angle() == pytest.approx(40.0, abs=0.01)
        finally:
            bench.faults.clear()
            await rotator.close()
