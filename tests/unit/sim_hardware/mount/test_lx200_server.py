"""The LX200 (OnStep) front-end through its own wire protocol, with a raw client on the pty."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, MountState
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.lx200 import Lx200Server, format_angle, parse_angle, serve_lx200

TIMEOUT = 5.0  # wall seconds for any one reply


class PtyClient:
    """Opens the slave side like a serial port and reads with bounded waits."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def read(self, n: int, timeout: float = TIMEOUT) -> bytes:
        """Exactly ``n`` bytes, or fewer if ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out = b""
        while len(out) < n and loop.time() < deadline:
            try:
                out += os.read(self.fd, n - len(out))
            except BlockingIOError:
                await asyncio.sleep(0.005)
        return out

    async def read_until_hash(self) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        out = b""
        while not out.endswith(b"#") and loop.time() < deadline:
            out += await self.read(1, timeout=deadline - loop.time())
        return out

    async def ask(self, data: bytes, *, n: int | None = None) -> bytes:
        self.send(data)
        return await (self.read(n) if n is not None else self.read_until_hash())

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
async def server(model: MountModel) -> AsyncIterator[Lx200Server]:
    srv = await serve_lx200(model)
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
def client(server: Lx200Server) -> Iterator[PtyClient]:
    c = PtyClient(server.path)
    yield c
    c.close()


async def wait_until_still(model: MountModel) -> None:
    for _ in range(200):  # bounded: at most 200 x 0.02 s wall
        if not model.is_moving():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("mount did not come to rest")


def test_angle_text_round_trips() -> None:
    assert format_angle(45.5, signed=True, precision="high") == "+45*30'00"
    assert format_angle(-0.25, signed=True, precision="low") == "-00*15"
    assert format_angle(359.99999, signed=False, precision="high") == "360*00'00"
    assert format_angle(123.456789, signed=False, precision="highest") == "123*27'24.440"
    assert parse_angle("+45*30'00") == pytest.approx(45.5)
    assert parse_angle("-05\xdf30:30") == pytest.approx(-(5 + 30 / 60 + 30 / 3600))
    assert parse_angle(" 123:27") == pytest.approx(123.45)
    assert parse_angle("12*75") is None
    assert parse_angle("abc") is None


async def test_url_and_ack(server: Lx200Server, client: PtyClient) -> None:
    assert server.url == f"lx200+serial://{server.path}"
    assert server.path.startswith("/dev/")
    assert await client.ask(b"\x06", n=1) == b"A"


async def test_position_in_both_precisions(client: PtyClient) -> None:
    assert await client.ask(b":GA#") == b"+10*00'00#"
    assert await client.ask(b":GZ#") == b"000*00'00#"
    assert await client.ask(b":GAH#") == b"+10*00'00.000#"
    assert await client.ask(b":GZH#") == b"000*00'00.000#"
    client.send(b":U#")  # no reply; toggles to low precision
    assert await client.ask(b":GA#") == b"+10*00#"
    assert await client.ask(b":GZ#") == b"000*00#"


async def test_goto_moves_the_mount(client: PtyClient, model: MountModel) -> None:
    assert await client.ask(b":hR#", n=1) == b"1"  # power-on state is parked
    assert await client.ask(b":Sa+45*30'00#", n=1) == b"1"
    assert await client.ask(b":Sz 120*15:30#", n=1) == b"1"  # INDI style, ':' separator
    assert await client.ask(b":MA#", n=1) == b"0"
    assert await client.ask(b":D#") == b"\x7f#"
    assert await client.ask(b":MA#", n=1) == b"5"  # OnStep: goto already in progress
    await wait_until_still(model)
    assert await client.ask(b":D#") == b"#"
    assert await client.ask(b":GA#") == b"+45*30'00#"
    assert await client.ask(b":GZ#") == b"120*15'30#"


async def test_goto_takes_the_short_way_inside_the_wrap(
    client: PtyClient, model: MountModel
) -> None:
    assert await client.ask(b":hR#:Sa+20*00#:Sz350*00#:MA#", n=4) == b"1110"
    await wait_until_still(model)
    assert model.encoder_position().az_deg == pytest.approx(-10.0)
    assert await client.ask(b":GZ#") == b"350*00'00#"


@pytest.mark.parametrize(
    ("setter", "reply"),
    [
        (b":Sa+95*00#", b"0"),
        (b":Sa+45*61#", b"0"),
        (b":Saabc#", b"0"),
        (b":Sz360*00#", b"0"),
        (b":Sz-10*00#", b"0"),
    ],
)
async def test_bad_setters_reply_zero(client: PtyClient, setter: bytes, reply: bytes) -> None:
    assert await client.ask(setter, n=1) == reply
    assert await client.read(1, timeout=0.1) == b""  # bare digit, no '#'


async def test_goto_limit_codes(client: PtyClient, model: MountModel) -> None:
    assert await client.ask(b":hR#", n=1) == b"1"
    assert await client.ask(b":Sa+02*00#:MA#", n=2) == b"11"  # below the 5 deg horizon limit
    assert model.target == AltAz(0.0, 10.0)


async def test_parked_mount_refuses_goto_until_unparked(
    client: PtyClient, model: MountModel
) -> None:
    assert model.state is MountState.PARKED
    assert await client.ask(b":Sa+30*00#:MA#", n=2) == b"14"
    assert await client.ask(b":hR#", n=1) == b"1"
    assert await client.ask(b":MA#", n=1) == b"0"
    await wait_until_still(model)
    assert await client.ask(b":hP#", n=1) == b"1"
    await wait_until_still(model)
    assert model.state is MountState.PARKED
    status = await client.ask(b":GU#")
    assert status.endswith(b"0#")
    assert b"P" in status
    assert b"A" in status


async def test_stop_and_jog(client: PtyClient, model: MountModel) -> None:
    client.send(b":hR#:RC#:Me#")
    assert await client.read(1) == b"1"
    await asyncio.sleep(0.05)
    assert model.velocity()[0] > 0
    assert model.velocity()[0] <= 0.1 * 5.0 + 1e-9  # centring rate: 10 % of full speed
    client.send(b":Q#")
    await wait_until_still(model)
    assert not model.is_moving()


async def test_unknown_and_noise(client: PtyClient) -> None:
    assert await client.ask(b":XY#", n=1) == b"0"
    assert await client.ask(b"junk:GVP#") == b"On-Step#"  # bytes before ':' ignored
    assert await client.ask(b":Sa+1:GA#", n=1) == b"0"  # ':' inside a frame is data
    assert await client.ask(b":" + b"x" * 100 + b"#:GVN#") == b"10.0q#"


async def test_stall_fault(client: PtyClient, faults: FaultInjector) -> None:
    faults.inject(FaultKind.STALL)
    assert await client.ask(b":hR#:Sa+30*00#:MA#", n=3) == b"117"
    assert (await client.ask(b":GU#")).endswith(b"1#")


async def test_error_reply_fault(client: PtyClient, faults: FaultInjector) -> None:
    faults.inject(FaultKind.ERROR_REPLY)
    assert await client.ask(b":GA#", n=1) == b"0"
    assert await client.ask(b"\x06", n=1) == b"0"
    faults.clear()
    assert await client.ask(b":GA#") == b"+10*00'00#"


async def test_hang_and_disconnect_faults_drop_replies(
    client: PtyClient, faults: FaultInjector, clock: WarpClock
) -> None:
    faults.inject(FaultKind.HANG, duration=clock.rate * 0.2)
    client.send(b":GA#")
    assert await client.read(1, timeout=0.1) == b""  # no answer
    await asyncio.sleep(0.25)
    assert await client.ask(b":GA#") == b"+10*00'00#"
    faults.inject(FaultKind.DISCONNECT, duration=clock.rate * 0.2)
    client.send(b":GZ#")  # swallowed: not read while disconnected
    assert await client.read(1, timeout=0.1) == b""
    await asyncio.sleep(0.25)
    assert await client.ask(b":GA#") == b"+10*00'00#"  # nothing stale queued


async def test_garbage_and_slow_faults(
    client: PtyClient, faults: FaultInjector, clock: WarpClock
) -> None:
    faults.inject(FaultKind.GARBAGE, duration=clock.rate * 0.2)
    assert await client.ask(b":GA#", n=10) != b"+10*00'00#"
    await asyncio.sleep(0.25)
    faults.inject(FaultKind.SLOW, delay_s=clock.rate * 0.3)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await client.ask(b":GA#") == b"+10*00'00#"
    assert loop.time() - t0 >= 0.25
