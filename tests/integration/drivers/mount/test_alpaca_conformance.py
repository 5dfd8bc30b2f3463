"""The Mount conformance suite against the Alpaca driver talking HTTP to the Alpaca emulator
(the same MountModel dynamics as the rotctld and LX200 emulators), plus the Alpaca-specific
paths: unpark on goto, cable-wrap mapping, typed errors from ErrorNumbers, faults, discovery."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, MountState
from drivers.errors import (
    DeviceFault,
    DeviceTimeout,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.mount.alpaca import AlpacaMount
from drivers.mount.alpaca_protocol import discover
from drivers.registry import open_device
from drivers.supervision import LinkState, Supervisor
from drivers.testing.conformance import mount_conformance
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.alpaca import serve_alpaca
from tests.integration.drivers.mount.conftest import DYNAMICS, LIMITS


async def test_alpaca_conformance(model: MountModel, clock: WarpClock) -> None:
    async with await serve_alpaca(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}&client_id=42", clock)
        assert isinstance(mount, AlpacaMount)
        await mount_conformance(mount, clock=clock)
        await clock.sleep(0.5)  # the emulated axes settle (settle_s) before reporting PARKED
        assert model.state is MountState.PARKED
        assert mount.unparks == 1  # the emulated mount powers up parked
        assert mount.interface_version == 4
        assert server.telescope.connected  # Connected is the device's, not the session's


async def test_alpaca_wrap_and_typed_errors(model: MountModel, clock: WarpClock) -> None:
    async with await serve_alpaca(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}", clock)
        await mount.connect()
        try:
            # -100 goes out as 260 and the emulator takes the wrap side nearest the axis
            await mount.slew_to(AltAz(-100.0, 30.0))
            here = await mount.position()
            assert abs(here.az_deg + 100.0) < 0.05, here
            assert abs(model.encoder_position().az_deg + 100.0) < 0.05
            # below the firmware el_min (5) but inside the driver's soft limits: the emulator
            # answers InvalidValue (0x401), the driver raises LimitViolation naming it
            with pytest.raises(LimitViolation, match=r"slewtoaltazasync.*0x401"):
                await mount.slew_to(AltAz(-100.0, 2.0))
            # a stalled motor is the device's own error number -> DeviceFault naming it
            model.faults.inject(FaultKind.STALL)  # type: ignore[union-attr]
            with pytest.raises(DeviceFault, match="0x501"):
                await mount.slew_to(AltAz(0.0, 40.0))
        finally:
            await mount.close()


async def test_alpaca_faults_are_bounded(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    async with await serve_alpaca(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}&timeout_s=0.3", clock)
        await mount.connect()
        try:
            faults.inject(FaultKind.HANG, duration=10.0)  # clock s = 0.5 s wall
            with pytest.raises(DeviceTimeout, match="no reply within"):
                await mount.position()
            faults.clear(FaultKind.HANG)
            faults.inject(FaultKind.GARBAGE)
            with pytest.raises(ProtocolError, match="not JSON"):
                await mount.position()
            faults.clear(FaultKind.GARBAGE)
            faults.inject(FaultKind.ERROR_REPLY)
            with pytest.raises(DeviceFault, match="0x500"):
                await mount.position()
            faults.clear(FaultKind.ERROR_REPLY)
            faults.inject(FaultKind.DISCONNECT)
            with pytest.raises(NotConnected):
                await mount.position()
            faults.clear(FaultKind.DISCONNECT)
            assert isinstance(await mount.position(), AltAz)
        finally:
            await mount.close()


async def test_discovery_finds_the_emulator(model: MountModel) -> None:
    async with await serve_alpaca(model, discovery_port=0) as server:
        assert server.discovery is not None
        found = await discover(server.discovery.port, timeout=0.3, address="127.0.0.1")
        assert found == [f"127.0.0.1:{server.port}"]
        assert server.discovery.answered == 1


async def test_emulator_answers_as_the_api_reference_says(model: MountModel) -> None:
    """Raw HTTP, not through our driver: the emulator's side of the Alpaca contract."""
    async with await serve_alpaca(model) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"
        api = f"{base}/api/v1/telescope/0"

        async def get(member: str, **params: str) -> tuple[int, Any]:
            async with http.get(f"{api}/{member}", params=params) as r:
                return r.status, (await r.json() if r.status == 200 else await r.text())

        async def put(member: str, **form: str) -> tuple[int, Any]:
            async with http.put(f"{api}/{member}", data=form) as r:
                return r.status, (await r.json() if r.status == 200 else await r.text())

        # informational members answer disconnected; motion ones say NotConnected (0x407)
        status, body = await get("interfaceversion", ClientID="1", ClientTransactionID="77")
        assert (status, body["Value"], body["ClientTransactionID"]) == (200, 4, 77)
        assert (await get("altitude"))[1]["ErrorNumber"] == 0x407
        # parameter names are case-insensitive; booleans are true/false in any case
        assert (await put("connected", cOnNeCtEd="TRUE"))[1]["ErrorNumber"] == 0
        first = (await get("altitude", clienttransactionid="5"))[1]
        second = (await get("azimuth"))[1]
        assert first["ClientTransactionID"] == 5
        assert second["ClientTransactionID"] == 0  # none sent: 0
        assert second["ServerTransactionID"] == first["ServerTransactionID"] + 1
        assert set(second) == {
            "Value",
            "ClientTransactionID",
            "ServerTransactionID",
            "ErrorNumber",
            "ErrorMessage",
        }
        # a PUT reply has no Value
        assert "Value" not in (await put("unpark"))[1]
        # uninterpretable requests are HTTP 400 with a plain-text message
        status, text = await put("slewtoaltazasync", Azimuth="10")
        assert status == 400
        assert "Altitude" in text
        assert (await put("slewtoaltazasync", Azimuth="x", Altitude="40"))[0] == 400
        assert (await get("warpdrive"))[0] == 400
        async with http.get(f"{base}/api/v1/telescope/1/altitude") as r:
            assert r.status == 400
        # modelled-out members are NotImplemented, never a made-up value
        for member in ("rightascension", "siderealtime", "sideofpier"):
            assert (await get(member))[1]["ErrorNumber"] == 0x400, member
        assert (await put("tracking", Tracking="true"))[1]["ErrorNumber"] == 0x400
        assert (await put("moveaxis", Axis="0", Rate="99"))[1]["ErrorNumber"] == 0x401
        rates = (await get("axisrates", Axis="1"))[1]["Value"]
        assert rates == [{"Minimum": 0.0, "Maximum": LIMITS.el.max_speed_deg_s}]
        # management API
        async with http.get(f"{base}/management/apiversions") as r:
            assert (await r.json())["Value"] == [1]
        async with http.get(f"{base}/management/v1/configureddevices") as r:
            devices = (await r.json())["Value"]
        assert devices[0]["DeviceType"] == "Telescope"
        assert devices[0]["DeviceNumber"] == 0


async def test_emulator_move_axis_runs_and_stops_each_axis(
    model: MountModel, clock: WarpClock
) -> None:
    async with await serve_alpaca(model) as server, aiohttp.ClientSession() as http:
        api = f"http://127.0.0.1:{server.port}/api/v1/telescope/0"

        async def put(member: str, **form: str) -> int:
            async with http.put(f"{api}/{member}", data=form) as r:
                return int((await r.json())["ErrorNumber"])

        assert await put("connected", Connected="true") == 0
        assert await put("moveaxis", Axis="0", Rate="1.0") == 0x408  # parked at power-on
        assert await put("unpark") == 0
        assert await put("moveaxis", Axis="0", Rate="1.0") == 0
        assert await put("moveaxis", Axis="1", Rate="2.0") == 0
        await clock.sleep(4.0)
        v_az, v_el = model.velocity()
        assert v_az == pytest.approx(1.0)
        assert v_el == pytest.approx(2.0)
        assert await put("moveaxis", Axis="1", Rate="0") == 0  # stops altitude only
        await clock.sleep(3.0)
        v_az, v_el = model.velocity()
        assert v_az == pytest.approx(1.0)
        assert v_el == 0.0
        assert await put("abortslew") == 0
        await clock.sleep(3.0)
        assert model.velocity() == (0.0, 0.0)


async def test_supervisor_reconnects_after_the_server_restarts(
    model: MountModel, clock: WarpClock
) -> None:
    """A restarted Alpaca server forgets Connected: the next request answers 0x407, which is
    NotConnected, and the supervisor reconnects (PUT connected) and retries the read."""
    server = await serve_alpaca(model)
    port = server.port
    mount = open_device(f"{server.url}?{DYNAMICS}&timeout_s=0.5", clock)
    sup = Supervisor(mount, clock, backoff_initial_s=0.5, backoff_max_s=2.0, seed=3)
    await sup.start()
    try:
        assert await sup.call(lambda m: m.position()) == AltAz(0.0, 10.0)
        await server.close()
        server = await serve_alpaca(model, port=port)
        before = server.telescope.connected
        assert await sup.call(lambda m: m.position(), retries=1) == AltAz(0.0, 10.0)
        assert (before, server.telescope.connected) == (False, True)
        assert sup.status.state is LinkState.CONNECTED
        assert sup.status.reconnects == 1
        assert "0x407" in (sup.status.last_error or "")
    finally:
        await sup.close()
        await server.close()
