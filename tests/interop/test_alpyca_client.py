"""ASCOM's own Python Alpaca client (alpyca, synchronous ``requests``) against our emulator.

A second, independent client implementation of the Alpaca API: if alpyca and our driver
both work with the emulator, the emulator is not merely agreeing with our own driver. The
emulator runs in the test's event loop; alpyca runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from sim_hardware.devices.mount import MountModel
from sim_hardware.servers.alpaca import serve_alpaca

alpaca_telescope = pytest.importorskip("alpaca.telescope")
alpaca_exceptions = pytest.importorskip("alpaca.exceptions")
alpaca_discovery = pytest.importorskip("alpaca.discovery")
alpaca_management = pytest.importorskip("alpaca.management")

T = TypeVar("T")
RATE = 20.0  #: clock seconds per wall second: slews of tens of degrees take well under 1 s
LIMITS = MountLimits(
    az=AxisLimits(-270.0, 270.0, max_speed_deg_s=6.0, max_accel_deg_s2=6.0),
    el=AxisLimits(5.0, 90.0, max_speed_deg_s=6.0, max_accel_deg_s2=6.0),
)


def poll(check: Callable[[], bool], bound_s: float = 10.0) -> bool:
    """Poll ``check`` (wall time, in the alpyca thread) until true or ``bound_s``."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


@pytest.fixture
def model() -> MountModel:
    clock = WarpClock(epoch=1_700_000_000.0, anchor=time.time(), rate=RATE)
    return MountModel(clock, LIMITS, park=AltAz(0.0, 10.0), settle_s=0.2, name="alpyca")


async def test_alpyca_drives_the_emulated_telescope(model: MountModel) -> None:
    async with await serve_alpaca(model) as server:
        scope = alpaca_telescope.Telescope(f"127.0.0.1:{server.port}", 0)
        exc = alpaca_exceptions

        def session() -> dict[str, object]:
            seen: dict[str, object] = {}
            with pytest.raises(exc.NotConnectedException):
                _ = scope.Altitude
            scope.Connect()  # V4: alpyca uses PUT connect + Connecting (InterfaceVersion 4)
            assert poll(lambda: not scope.Connecting)
            assert scope.Connected
            assert scope.InterfaceVersion == 4
            assert scope.AlignmentMode == alpaca_telescope.AlignmentModes.algAltAz
            seen["start"] = (scope.Azimuth, scope.Altitude)
            assert scope.AtPark  # powers up parked
            with pytest.raises(exc.ParkedException) as parked:
                scope.SlewToAltAzAsync(90.0, 45.0)
            seen["parked_number"] = parked.value.number
            scope.Unpark()
            with pytest.raises(exc.InvalidValueException) as invalid:
                scope.SlewToAltAzAsync(90.0, 95.0)
            seen["invalid_number"] = invalid.value.number
            scope.SlewToAltAzAsync(30.0, 40.0)
            assert scope.Slewing
            assert poll(lambda: not scope.Slewing)
            seen["arrived"] = (scope.Azimuth, scope.Altitude)
            scope.SlewToAltAzAsync(300.0, 40.0)  # a long slew (through 0, the wrap side)
            assert poll(lambda: abs(scope.Azimuth - 30.0) > 2.0)
            scope.AbortSlew()
            assert poll(lambda: not scope.Slewing)
            seen["aborted"] = scope.Azimuth
            rates = scope.AxisRates(alpaca_telescope.TelescopeAxes.axisPrimary)
            seen["rate_max"] = rates[0].Maximum
            assert scope.CanMoveAxis(alpaca_telescope.TelescopeAxes.axisSecondary)
            with pytest.raises(exc.NotImplementedException):
                scope.Tracking = True  # no sidereal model: refused, not faked
            with pytest.raises(exc.NotImplementedException):
                _ = scope.RightAscension
            scope.Park()
            assert poll(lambda: scope.AtPark)
            seen["parked_at"] = (scope.Azimuth, scope.Altitude)
            scope.Disconnect()
            assert poll(lambda: not scope.Connecting)
            assert not scope.Connected
            return seen

        seen = await in_thread(session)

    assert seen["start"] == (0.0, 10.0)
    assert seen["parked_number"] == 0x408
    assert seen["invalid_number"] == 0x401
    arrived = seen["arrived"]
    assert isinstance(arrived, tuple)
    az, alt = arrived
    assert abs(az - 30.0) < 0.01
    assert abs(alt - 40.0) < 0.01
    aborted = seen["aborted"]
    assert isinstance(aborted, float)
    assert abs(aborted - 300.0) > 1.0, "the abort did not stop the slew short of its target"
    assert seen["rate_max"] == 6.0
    assert seen["parked_at"] == (0.0, 10.0)


async def test_alpyca_management_and_discovery(
    model: MountModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Discovery needs a socket that receives broadcasts: bind the responder to all
    # addresses (it only ever answers with the HTTP port, which listens on loopback).
    async with await serve_alpaca(model) as server:
        from sim_hardware.servers.alpaca_discovery import DiscoveryResponder

        responder = DiscoveryResponder(server.port, host="0.0.0.0", port=0)
        await responder.start()
        try:
            addr = f"127.0.0.1:{server.port}"
            versions = await in_thread(lambda: alpaca_management.apiversions(addr))
            devices = await in_thread(lambda: alpaca_management.configureddevices(addr))
            monkeypatch.setattr(alpaca_discovery, "port", responder.port)  # module constant
            found = await in_thread(lambda: alpaca_discovery.search_ipv4(numquery=1, timeout=1))
        finally:
            await responder.close()
    assert versions == [1]
    assert [(d["DeviceType"], d["DeviceNumber"]) for d in devices] == [("Telescope", 0)]
    assert devices[0]["UniqueID"] == server.unique_id
    assert f"127.0.0.1:{server.port}" in found
