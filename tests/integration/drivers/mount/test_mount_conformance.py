"""The Mount conformance suite against each driver talking to the emulator over a real
transport: rotctld over loopback TCP, LX200 over a pseudo-terminal (pyserial)."""

from __future__ import annotations

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, MountState
from drivers.errors import DeviceFault, DeviceTimeout
from drivers.mount.lx200 import LX200Mount
from drivers.mount.rotctld import RotctldMount
from drivers.registry import open_device
from drivers.testing.conformance import mount_conformance
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.lx200 import serve_lx200
from sim_hardware.servers.rotctld import serve_rotctld

from .conftest import DYNAMICS, LIMITS, PARK


async def test_rotctld_conformance(model: MountModel, clock: WarpClock) -> None:
    async with await serve_rotctld(model) as server:
        url = f"{server.url}?{DYNAMICS}&park_az={PARK.az_deg}&park_el={PARK.el_deg}"
        mount = open_device(url, clock)
        assert isinstance(mount, RotctldMount)
        await mount_conformance(mount, clock=clock)
        await clock.sleep(0.5)  # the emulated axes settle (settle_s) before reporting PARKED
        assert model.state is MountState.PARKED


async def test_rotctld_reads_emulator_limits(model: MountModel, clock: WarpClock) -> None:
    async with await serve_rotctld(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}", clock)
        await mount.connect()
        try:
            assert mount.limits.az.min_deg == LIMITS.az.min_deg
            assert mount.limits.az.max_deg == LIMITS.az.max_deg
            assert mount.limits.el.min_deg == LIMITS.el.min_deg
        finally:
            await mount.close()


async def test_lx200_conformance(model: MountModel, clock: WarpClock) -> None:
    server = await serve_lx200(model)
    try:
        mount = open_device(f"{server.url}?{DYNAMICS}", clock)
        assert isinstance(mount, LX200Mount)
        await mount_conformance(mount, clock=clock)
        await clock.sleep(0.5)  # the emulated axes settle (settle_s) before reporting PARKED
        assert model.state is MountState.PARKED
        assert mount.unparks == 1  # the emulated mount powers up parked
    finally:
        await server.close()


async def test_rotctld_stalled_axis_is_fault_and_stops(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    async with await serve_rotctld(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}", clock)
        await mount.connect()
        try:
            faults.inject(FaultKind.STALL)
            with pytest.raises(DeviceFault, match="RPRT -9"):
                await mount.slew_to(AltAz(30.0, 30.0))
        finally:
            await mount.close()


async def test_rotctld_hang_is_bounded(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    async with await serve_rotctld(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}&timeout_s=0.2", clock)
        await mount.connect()
        try:
            faults.inject(FaultKind.HANG)
            with pytest.raises(DeviceTimeout):
                await mount.position()
        finally:
            await mount.close()


async def test_lx200_hang_is_bounded(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    server = await serve_lx200(model)
    try:
        mount = open_device(f"{server.url}?{DYNAMICS}&timeout_s=0.2", clock)
        await mount.connect()
        try:
            faults.inject(FaultKind.HANG)
            with pytest.raises(DeviceTimeout):
                await mount.position()
            with pytest.raises(DeviceTimeout):
                await mount.slew_to(AltAz(30.0, 30.0))
            faults.clear(FaultKind.HANG)
            assert isinstance(await mount.position(), AltAz)  # the line resynchronised
        finally:
            await mount.close()
    finally:
        await server.close()


async def test_lx200_slew_time_bound_fires_on_stall(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    # The goto is accepted, then the axes stall: the computed bound (not a hang) ends it.
    server = await serve_lx200(model, reject_goto_while_slewing=False)
    try:
        mount = open_device(f"{server.url}?{DYNAMICS}", clock)
        await mount.connect()
        try:
            await mount.slew_to(AltAz(10.0, 20.0))
            faults.inject(FaultKind.STALL, at=clock.now() + 0.5)
            t0 = clock.now()
            with pytest.raises(DeviceTimeout, match="not reached within") as info:
                await mount.slew_to(AltAz(40.0, 40.0))
            bound = mount.move_timeout_s(AltAz(10.0, 20.0), AltAz(40.0, 40.0))
            assert bound <= clock.now() - t0 <= bound + 2.0, info.value
        finally:
            await mount.close()
    finally:
        await server.close()
