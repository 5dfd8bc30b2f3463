"""ELL14 emulator through its wire protocol on a pty, with a raw client (protocols.md §2a)."""

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
from sim_hardware.servers.elliptec import ElliptecBus, ElliptecDevice, from_hex32, to_hex32
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.replies import FaultyReplies

PPR = 143_360  # pulses per turn configured for these tests


class Rig:
    def __init__(self, clock: WarpClock, faults: FaultInjector, bus: ElliptecBus, path: str):
        self.clock, self.faults, self.bus, self.path = clock, faults, bus, path


@pytest.fixture
async def ell() -> AsyncIterator[Rig]:
    clock = WarpClock(1_700_000_000.0, rate=10.0)
    faults = FaultInjector(clock, "test.hwp")
    devices = {
        a: ElliptecDevice(RotatorModel(clock, initial_deg=0.0, faults=faults, counts_per_turn=PPR))
        for a in (0, 3)
    }
    bus = ElliptecBus(clock, devices, faults=faults)
    async with PtyServer(bus, faults=faults, name="test.hwp", clock=clock) as server:
        yield Rig(clock, faults, bus, server.path)


async def test_info_reply_layout(ell: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(ell.path)
    reply = await port.query(b"0in")
    assert reply.endswith(b"\r\n")
    body = reply[:-2].decode()
    assert body[:3] == "0IN"
    data = body[3:]
    assert len(data) == 30
    assert data[0:2] == "0E"  # ELL14
    assert int(data[14:16], 16) >= 0  # firmware hex
    assert int(data[18:22], 16) == 360  # travel
    assert int(data[22:30], 16) == PPR  # pulses per travel


async def test_absolute_move_replies_position_when_motion_ends(
    ell: Rig, raw_pty: Callable[[str], Any]
) -> None:
    port = raw_pty(ell.path)
    port.write(b"0ma00008C00")  # 90 deg at 143360 pulses/turn (notes' example)
    await asyncio.sleep(0.005)
    assert await port.query(b"0gs") == b"0GS09\r\n"  # busy while moving
    assert await port.read_until() == b"0PO00008C00\r\n"
    assert ell.bus.devices[0].model.angle() == pytest.approx(90.0, abs=1e-3)
    assert await port.query(b"0gp") == b"0PO00008C00\r\n"


async def test_relative_negative_move_two_complement(
    ell: Rig, raw_pty: Callable[[str], Any]
) -> None:
    port = raw_pty(ell.path)
    assert await port.query(b"0mrFFFFF072") == f"0PO{to_hex32(-3982)}\r\n".encode()
    assert from_hex32("FFFFF072") == -3982
    assert ell.bus.devices[0].model.angle() == pytest.approx(360 - 10.0, abs=0.01)


async def test_home_zeroes_encoder_and_trailing_cr_is_ignored(
    ell: Rig, raw_pty: Callable[[str], Any]
) -> None:
    port = raw_pty(ell.path)
    await port.query(b"0ma00002000\r")
    assert await port.query(b"0ho0\r\n") == b"0PO00000000\r\n"  # back to back: accepted
    assert ell.bus.devices[0].model.homed


async def test_home_then_move_back_to_back_is_accepted(
    ell: Rig, raw_pty: Callable[[str], Any]
) -> None:
    # roesel's elliptec sends each request as soon as the previous reply arrived; no source
    # documents a minimum gap after a move, so the emulator must not invent one (issue 14).
    port = raw_pty(ell.path)
    await port.query(b"0ma00001000")
    assert await port.query(b"0ho0") == b"0PO00000000\r\n"
    assert await port.query(b"0gs") == b"0GS00\r\n"  # idle once PO has been sent
    assert await port.query(b"0ma00002000") == b"0PO00002000\r\n"
    assert await port.query(b"0mr00001000") == b"0PO00003000\r\n"
    assert ell.bus.devices[0].model.angle() == pytest.approx(0x3000 * 360 / PPR, abs=1e-3)


async def test_move_during_a_move_is_busy(ell: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(ell.path)
    port.write(b"0ma00008C00")
    await asyncio.sleep(0.005)
    assert await port.query(b"0ma00002000") == b"0GS09\r\n"  # refused while moving
    assert await port.read_until() == b"0PO00008C00\r\n"  # the first move carries on
    assert await port.query(b"0gs") == b"0GS09\r\n"  # latched busy, read once, then clear
    assert await port.query(b"0gs") == b"0GS00\r\n"


async def test_multidrop_addresses(ell: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(ell.path)
    assert (await port.query(b"3gp")).startswith(b"3PO")
    port.write(b"5gp")  # no device at 5: the line stays silent
    assert await port.silence() == b""
    assert await port.query(b"3ca7") == b"7GS00\r\n"  # answered from the new address
    assert (await port.query(b"7gp")).startswith(b"7PO")


async def test_error_replies(ell: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(ell.path)
    assert await port.query(b"0zz") == b"0GS03\r\n"  # unknown command
    assert await port.query(b"0sv7F") == b"0GS04\r\n"  # velocity > 100 %
    assert await port.query(b"0gs") == b"0GS04\r\n"  # latched until read
    assert await port.query(b"0gs") == b"0GS00\r\n"
    assert await port.query(b"0maXYZ00000") == b"0GS03\r\n"  # non-hex data
    assert await port.query(b"0sv32") == b"0GS00\r\n"
    assert await port.query(b"0gv") == b"0GV32\r\n"
    port.write(b"0ma12")  # truncated: communication timeout
    assert await port.read_until() == b"0GS01\r\n"


async def test_jog_step_and_stop(ell: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(ell.path)
    step = to_hex32(round(10 * PPR / 360)).encode()
    assert await port.query(b"0sj" + step) == b"0GS00\r\n"
    assert await port.query(b"0gj") == b"0GJ" + step + b"\r\n"
    assert await port.query(b"0fw") == b"0PO" + step + b"\r\n"
    await asyncio.sleep(0.01)
    assert await port.query(b"0sj00000000") == b"0GS00\r\n"  # 0: continuous jog
    port.write(b"0bw")
    await asyncio.sleep(0.05)
    port.write(b"0st")  # the jog answers PO where it stopped
    reply = await port.read_until()
    assert reply.startswith(b"0PO")
    assert from_hex32(reply[3:11].decode()) < 0
    assert await port.silence(0.1) == b""
    assert await port.query(b"0st") == b"0GS00\r\n"  # idle stop


async def test_faults_error_reply_stall_hang(ell: Rig, raw_pty: Callable[[str], Any]) -> None:
    port = raw_pty(ell.path)
    ell.faults.inject(FaultKind.ERROR_REPLY, duration=0.5)
    assert await port.query(b"0gp") == b"0GS0B\r\n"
    ell.faults.clear()
    assert await port.query(b"0gs") == b"0GS0B\r\n"
    ell.faults.inject(FaultKind.STALL, duration=5.0)
    assert await port.query(b"0ma00008C00") == b"0GS02\r\n"  # mechanical timeout
    ell.faults.clear()
    ell.faults.inject(FaultKind.HANG, duration=2.0)  # 0.2 s wall at rate 10
    port.write(b"0gp")
    assert await port.silence(0.1) == b""
    await asyncio.sleep(0.2)
    assert (await port.query(b"0gp")).startswith(b"0PO")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(max_size=64))
def test_garbage_never_stops_the_handler(garbage: bytes) -> None:
    """Random bytes, then CRs to flush any half-read command: the bus still answers ``in``."""

    async def scenario() -> list[bytes]:
        clock = SystemClock()
        bus = ElliptecBus(clock, {0: ElliptecDevice(RotatorModel(clock, initial_deg=0.0))})
        replies: list[bytes] = []
        writer = FaultyReplies(replies.append, faults=None, clock=clock)
        reader = asyncio.StreamReader()
        task = asyncio.create_task(bus(reader, writer))
        reader.feed_data(garbage + b"\r" * 9 + b"".join(b"%Xin" % a for a in range(16)))
        reader.feed_eof()
        await asyncio.wait_for(task, 5.0)
        return replies

    replies = asyncio.run(scenario())
    assert any(r[1:3] == b"IN" and r.endswith(b"\r\n") for r in replies)
