"""The shared reconnect policy against a real emulated rotctld: restarts and faults."""

from __future__ import annotations

import asyncio

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz
from drivers.errors import DeviceFault, DeviceTimeout, NotConnected
from drivers.mount.rotctld import RotctldMount
from drivers.registry import open_device
from drivers.supervision import LinkState, Supervisor, SupervisorStatus
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.rotctld import serve_rotctld

from .conftest import DYNAMICS


def supervise(
    mount: RotctldMount, clock: WarpClock, **kwargs: object
) -> tuple[Supervisor[RotctldMount], list[LinkState], list[str]]:
    resyncs: list[str] = []
    states: list[LinkState] = []

    async def resync(m: RotctldMount) -> None:
        resyncs.append(m.info)  # a real hook would restore speed, precision, target

    def listen(status: SupervisorStatus) -> None:
        states.append(status.state)

    options: dict[str, object] = {"backoff_initial_s": 0.5, "backoff_max_s": 4.0, "seed": 7}
    options.update(kwargs)
    sup = Supervisor(mount, clock, resync=resync, **options)  # type: ignore[arg-type]
    sup.add_listener(listen)
    return sup, states, resyncs


async def test_reconnects_after_server_restart_on_same_port(
    model: MountModel, clock: WarpClock
) -> None:
    server = await serve_rotctld(model)
    port = server.port
    mount = open_device(f"{server.url}?{DYNAMICS}&timeout_s=0.5", clock)
    sup, states, resyncs = supervise(mount, clock)
    await sup.start()
    try:
        assert await sup.call(lambda m: m.position()) == AltAz(0.0, 10.0)
        await server.close()

        async def restart_later() -> None:
            await asyncio.sleep(0.2)  # wall: the daemon is down for a while
            nonlocal server
            server = await serve_rotctld(model, port=port)

        restart = asyncio.create_task(restart_later())
        pos = await sup.call(lambda m: m.position(), retries=1)
        await restart
        assert pos == AltAz(0.0, 10.0)
        status = sup.status
        assert status.state is LinkState.CONNECTED
        assert status.reconnects == 1
        assert status.consecutive_errors == 0
        assert "NotConnected" in (status.last_error or "")
        assert LinkState.RECONNECTING in states
        assert states[-1] is LinkState.CONNECTED
        assert len(resyncs) == 2  # after start and after the reconnect
    finally:
        await sup.close()
        await server.close()


async def test_non_idempotent_call_is_not_retried(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    async with await serve_rotctld(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}", clock)
        sup, _, resyncs = supervise(mount, clock)
        await sup.start()
        try:
            faults.inject(FaultKind.DISCONNECT, duration=4.0)  # clock s: 0.2 s of wall time
            await asyncio.sleep(0.1)  # wall: the server's watcher drops the connection
            with pytest.raises(NotConnected):
                await sup.call(lambda m: m.position())  # raised, although it reconnected
            assert sup.state is LinkState.CONNECTED
            assert sup.status.reconnects == 1
            assert len(resyncs) == 2
            assert await sup.call(lambda m: m.position()) == AltAz(0.0, 10.0)
        finally:
            await sup.close()


async def test_hang_gives_failed_then_manual_reconnect(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    async with await serve_rotctld(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}&timeout_s=0.2", clock)
        sup, states, _ = supervise(mount, clock, max_attempts=2, degraded_after=5)
        await sup.start()
        try:
            faults.inject(FaultKind.HANG)
            with pytest.raises(DeviceTimeout):
                await sup.call(lambda m: m.position())
            assert sup.state is LinkState.FAILED  # both reconnect handshakes hung
            assert "DeviceTimeout" in (sup.status.last_error or "")
            with pytest.raises(NotConnected, match="link failed after 2 reconnect attempts"):
                await sup.call(lambda m: m.position())  # at once, no hang
            faults.clear(FaultKind.HANG)
            await sup.reconnect()
            assert sup.state is LinkState.CONNECTED
            assert await sup.call(lambda m: m.position()) == AltAz(0.0, 10.0)
            assert states[-2:] == [LinkState.RECONNECTING, LinkState.CONNECTED]
        finally:
            await sup.close()


async def test_consecutive_device_faults_degrade_then_recover(
    model: MountModel, clock: WarpClock, faults: FaultInjector
) -> None:
    async with await serve_rotctld(model) as server:
        mount = open_device(f"{server.url}?{DYNAMICS}", clock)
        sup, states, _ = supervise(mount, clock, degraded_after=2)
        await sup.start()
        try:
            faults.inject(FaultKind.STALL)
            for _ in range(2):
                with pytest.raises(DeviceFault):
                    await sup.call(lambda m: m.slew_to(AltAz(20.0, 20.0)))
            assert sup.state is LinkState.DEGRADED
            assert sup.status.consecutive_errors == 2
            assert sup.status.reconnects == 0  # a device fault is not a link fault
            faults.clear(FaultKind.STALL)
            model.reset()
            await sup.call(lambda m: m.position())
            assert sup.state is LinkState.CONNECTED
            assert states[-2:] == [LinkState.DEGRADED, LinkState.CONNECTED]
        finally:
            await sup.close()


async def test_start_fails_visibly_when_nothing_listens(clock: WarpClock) -> None:
    from tests.conftest import free_tcp_port

    mount = open_device(f"rotctld://127.0.0.1:{free_tcp_port()}", clock)
    sup, states, _ = supervise(mount, clock, max_attempts=3)
    with pytest.raises(NotConnected, match="could not connect after 3 attempts"):
        await sup.start()
    assert sup.state is LinkState.FAILED
    assert states == [LinkState.RECONNECTING, LinkState.FAILED]
