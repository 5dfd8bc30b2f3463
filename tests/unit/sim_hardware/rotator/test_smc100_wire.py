"""SMC100 emulator through its wire protocol on a pty, with a raw client (protocols.md §2c)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.clock import SystemClock, WarpClock
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.replies import FaultyReplies
from sim_hardware.servers.smc100 import SMC100Controller, SMC100Line


class Rig:
    def __init__(self, faults: FaultInjector, line: SMC100Line, path: str) -> None:
        self.faults, self.line, self.path = faults, line, path


@pytest.fixture
async def smc() -> AsyncIterator[Rig]:
    clock = WarpClock(1_700_000_000.0, rate=20.0)
    faults = FaultInjector(clock, "test.smc")
    model = RotatorModel(clock, initial_deg=10.0, max_speed_deg_s=20.0, faults=faults)
    line = SMC100Line(clock, {1: SMC100Controller(model)}, faults=faults)
    async with PtyServer(line, faults=faults, name="test.smc", clock=clock) as server:
        yield Rig(faults, line, server.path)


async def wait_state(port: Any, state: bytes, bound: float = 5.0) -> bytes:
    """Poll ``1TS`` until the state code is ``state`` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while True:
        reply: bytes = await port.query(b"1TS\r\n")
        if reply[-4:-2] == state or loop.time() > deadline:
            return reply
        await asyncio.sleep(0.01)


async def test_state_machine_home_move(smc: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(smc.path)
    assert await port.query(b"1TS\r\n") == b"1TS00000A\r\n"  # NOT REFERENCED from reset
    port.write(b"1PA45\r\n")  # not allowed before homing: silent, error H
    assert await port.query(b"1TE\r\n") == b"1TEH\r\n"
    assert await port.query(b"1TE\r\n") == b"1TE@\r\n"  # reading TE clears it
    port.write(b"1OR\r\n")
    assert (await port.query(b"1TS?\r\n"))[-4:-2] == b"1E"  # HOMING
    assert (await wait_state(port, b"32")) == b"1TS000032\r\n"  # READY from HOMING
    assert await port.query(b"1TP?\r\n") == b"1TP0.00000\r\n"
    port.write(b"1PA45.0\r\n")
    assert (await port.query(b"1TS\r\n"))[-4:-2] == b"28"  # MOVING
    assert await port.query(b"1TH\r\n") == b"1TH45.00000\r\n"
    assert (await wait_state(port, b"33")) == b"1TS000033\r\n"
    assert await port.query(b"1TP\r\n") == b"1TP45.00000\r\n"
    assert smc.line.controllers[1].model.angle() == pytest.approx(45.0, abs=1e-3)


async def test_errors_and_queries(smc: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(smc.path)
    assert await port.query(b"1ID?\r\n") == b"1IDURS75BCC_EMULATED\r\n"
    assert await port.query(b"1SL?\r\n") == b"1SL-170\r\n"
    assert await port.query(b"1SR?\r\n") == b"1SR170\r\n"
    port.write(b"1XX\r\n")
    assert await port.query(b"1TE\r\n") == b"1TEA\r\n"  # unknown command
    port.write(b"1OR\r\n")
    await wait_state(port, b"32")
    port.write(b"1OR\r\n")
    assert await port.query(b"1TE\r\n") == b"1TEK\r\n"  # not allowed in READY
    port.write(b"1PA500\r\n")
    assert await port.query(b"1TE\r\n") == b"1TEC\r\n"  # outside SL/SR
    port.write(b"1PA\r\n")
    assert await port.query(b"1TE\r\n") == b"1TEC\r\n"  # parameter missing
    port.write(b"1PR-300\r\n")
    assert await port.query(b"1TE\r\n") == b"1TEG\r\n"  # displacement out of limits
    port.write(b"1VA10\r\n")
    assert await port.query(b"1VA?\r\n") == b"1VA10\r\n"
    port.write(b"1MM0\r\n")
    assert (await port.query(b"1TS\r\n"))[-4:-2] == b"3C"
    port.write(b"1PA10\r\n")
    assert await port.query(b"1TE\r\n") == b"1TEJ\r\n"  # not allowed in DISABLE
    port.write(b"2TP\r\n")  # no controller at address 2: silent
    assert await port.silence(0.1) == b""


async def test_stop_and_stall(smc: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(smc.path)
    port.write(b"1OR\r\n")
    await wait_state(port, b"32")
    port.write(b"1PA150\r\n")
    await asyncio.sleep(0.05)
    port.write(b"1ST\r\n")
    assert (await wait_state(port, b"33")) == b"1TS000033\r\n"
    pos = float((await port.query(b"1TP\r\n"))[3:-2])
    assert 0.0 < pos < 150.0
    smc.faults.inject(FaultKind.STALL, duration=100.0)
    port.write(b"1PA-100\r\n")
    assert await wait_state(port, b"3D") == b"1TS00203D\r\n"  # following error, DISABLE
    assert await port.query(b"1TS\r\n") == b"1TS00003D\r\n"  # TS cleared the error bits


async def test_error_reply_fault(smc: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(smc.path)
    smc.faults.inject(FaultKind.ERROR_REPLY, duration=2.0)
    port.write(b"1TP\r\n")
    assert await port.silence(0.05) == b""
    smc.faults.clear()
    assert await port.query(b"1TE\r\n") == b"1TEV\r\n"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(max_size=300))
def test_garbage_never_stops_the_handler(garbage: bytes) -> None:
    async def scenario() -> list[bytes]:
        clock = SystemClock()
        line = SMC100Line(clock, {1: SMC100Controller(RotatorModel(clock))})
        replies: list[bytes] = []
        writer = FaultyReplies(replies.append, faults=None, clock=clock)
        reader = asyncio.StreamReader()
        task = asyncio.create_task(line(reader, writer))
        reader.feed_data(garbage + b"\r\n1VE\r\n")
        reader.feed_eof()
        await asyncio.wait_for(task, 5.0)
        return replies

    assert asyncio.run(scenario())[-1].startswith(b"1VE")
