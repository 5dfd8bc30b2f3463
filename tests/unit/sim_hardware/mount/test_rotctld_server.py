"""The rotctld front-end through its own wire protocol, with a raw asyncio TCP client.

Expected bytes were taken from Hamlib 4.5.4's ``rotctld -m 1`` talking to the same raw client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.rotctld import RotctldServer, serve_rotctld

TIMEOUT = 5.0  # wall seconds for any one reply


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(r, w)

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def lines(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
            out.append(line.decode())
        return out

    async def ask(self, text: str, n: int = 1) -> list[str]:
        await self.send(text)
        return await self.lines(n)

    async def nothing_within(self, wall_s: float) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1), wall_s)
        except TimeoutError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


@pytest.fixture
async def server(model: MountModel) -> AsyncIterator[RotctldServer]:
    srv = await serve_rotctld(model)
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def client(server: RotctldServer) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(server.port)
    try:
        yield c
    finally:
        await c.close()


async def wait_until_still(model: MountModel, clock: WarpClock) -> None:
    for _ in range(200):  # bounded: at most 200 x 0.02 s wall
        if not model.is_moving():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("mount did not come to rest")


async def test_url_names_the_loopback_port(server: RotctldServer) -> None:
    assert server.url == f"rotctld://127.0.0.1:{server.port}"
    assert server.port > 0


async def test_get_pos_prints_two_fixed_point_lines(client: RawClient) -> None:
    assert await client.ask("p\n", 2) == ["0.00\n", "10.00\n"]
    assert await client.ask("\\get_pos\n", 2) == ["0.00\n", "10.00\n"]


async def test_set_pos_moves_the_mount(
    client: RawClient, model: MountModel, clock: WarpClock
) -> None:
    assert await client.ask("P 120.5 45.25\n") == ["RPRT 0\n"]
    assert model.is_moving()
    await wait_until_still(model, clock)
    assert await client.ask("p\n", 2) == ["120.50\n", "45.25\n"]
    assert await client.ask("\\set_pos -30,5 20\n") == ["RPRT 0\n"]  # decimal comma
    assert model.target == AltAz(-30.5, 20.0)


async def test_arguments_may_follow_on_the_next_line(client: RawClient, model: MountModel) -> None:
    await client.send("P 10\n")
    assert await client.ask("20\n") == ["RPRT 0\n"]
    assert model.target == AltAz(10.0, 20.0)


async def test_several_commands_in_one_token_and_one_line(client: RawClient) -> None:
    assert await client.ask("pp\n", 4) == ["0.00\n", "10.00\n"] * 2
    assert await client.ask("S p\n", 3) == ["RPRT 0\n", "0.00\n", "10.00\n"]


@pytest.mark.parametrize(
    ("request_", "reply"),
    [
        ("P abc 10\n", "RPRT -1\n"),  # not a number
        ("P nan 10\n", "RPRT -1\n"),  # refused (the Hamlib dummy accepts NaN)
        ("P 300 10\n", "RPRT -1\n"),  # outside the azimuth wrap
        ("P 10 95\n", "RPRT -1\n"),  # above max elevation
        ("P 10 0\n", "RPRT -1\n"),  # below min elevation
        ("M 3 50\n", "RPRT -1\n"),  # not a direction
        ("R x\n", "RPRT -1\n"),
        ("C foo 1\n", "RPRT -1\n"),  # unknown config token
        ("C min_az 0\n", "RPRT -9\n"),  # firmware limits are fixed
    ],
)
async def test_bad_requests_get_rprt_error_codes(
    client: RawClient, model: MountModel, request_: str, reply: str
) -> None:
    assert await client.ask(request_) == [reply]
    assert model.target == AltAz(0.0, 10.0)  # nothing was commanded
    assert await client.ask("p\n", 2) == ["0.00\n", "10.00\n"]  # connection still serves


async def test_unknown_command_gets_no_reply_like_hamlib(client: RawClient) -> None:
    await client.send("Z\n\\foo\n")
    assert await client.nothing_within(0.3)
    assert await client.ask("p\n", 2) == ["0.00\n", "10.00\n"]


async def test_extended_response_protocol(client: RawClient) -> None:
    assert await client.ask("+\\get_pos\n", 4) == [
        "get_pos:\n",
        "Azimuth: 0.00\n",
        "Elevation: 10.00\n",
        "RPRT 0\n",
    ]
    assert await client.ask("+P 10 20\n", 2) == ["set_pos: 10 20\n", "RPRT 0\n"]
    assert await client.ask("|P 500 10\n") == ["set_pos: 500 10|RPRT -1\n"]
    assert await client.ask(";S\n") == ["stop:;RPRT 0\n"]
    assert await client.ask("+_\n", 3) == [
        "get_info:\n",
        "Info: qgs emulated mount test-mount\n",
        "RPRT 0\n",
    ]


async def test_dump_state_reports_firmware_limits(client: RawClient) -> None:
    assert await client.ask("\\dump_state\n", 9) == [
        "1\n",
        "1\n",
        "min_az=-270.000000\n",
        "max_az=270.000000\n",
        "min_el=5.000000\n",
        "max_el=90.000000\n",
        "south_zero=0\n",
        "rot_type=AzEl\n",
        "done\n",
    ]
    ext = await client.ask("+\\dump_state\n", 11)
    assert ext[0] == "dump_state:\n"
    assert ext[3] == "Minimum Azimuth: -270.000000\n"
    assert ext[-1] == "RPRT 0\n"


async def test_dump_caps_ends_with_rprt(client: RawClient) -> None:
    await client.send("1\n")
    lines = []
    for _ in range(40):  # bounded
        (line,) = await client.lines(1)
        lines.append(line)
        if line.startswith("RPRT"):
            break
    assert lines[0] == "Caps dump for model:\t1\n"
    assert "Max Elevation:\t\t90.00\n" in lines
    assert lines[-1] == "RPRT 0\n"


async def test_stop_park_move_reset_and_status(
    client: RawClient, model: MountModel, clock: WarpClock
) -> None:
    assert await client.ask("M 16 100\n") == ["RPRT 0\n"]  # right = clockwise
    await asyncio.sleep(0.05)
    assert await client.ask("s\n") == ["MOVING MOVING_AZ MOVING_RIGHT \n"]
    assert await client.ask("\\stop\n") == ["RPRT 0\n"]
    await wait_until_still(model, clock)
    assert model.encoder_position().az_deg > 0
    assert await client.ask("M UP 50\n") == ["RPRT 0\n"]
    assert model.velocity()[1] >= 0
    assert await client.ask("R 1\n") == ["RPRT 0\n"]
    await wait_until_still(model, clock)
    assert await client.ask("K\n") == ["RPRT 0\n"]
    await wait_until_still(model, clock)
    assert await client.ask("p\n", 2) == ["0.00\n", "10.00\n"]
    assert await client.ask("+s\n", 3) == ["get_status:\n", "Status flags: \n", "RPRT 0\n"]


async def test_quit_closes_the_connection(client: RawClient) -> None:
    await client.send("q\n")
    data = await asyncio.wait_for(client.reader.read(), TIMEOUT)
    assert data == b""


async def test_concurrent_clients_share_one_mount(server: RotctldServer, model: MountModel) -> None:
    clients = [await RawClient.connect(server.port) for _ in range(4)]
    try:
        replies = await asyncio.gather(*(c.ask(f"P {10 * i} 20\n") for i, c in enumerate(clients)))
        assert replies == [["RPRT 0\n"]] * 4
        reads = await asyncio.gather(*(c.ask("p\n", 2) for c in clients))
        assert all(len(r) == 2 and float(r[1]) >= 10.0 for r in reads)
        assert model.target.el_deg == 20.0
    finally:
        for c in clients:
            await c.close()


async def test_stall_fault_rejects_motion(client: RawClient, faults: FaultInjector) -> None:
    faults.inject(FaultKind.STALL)
    assert await client.ask("P 20 20\n") == ["RPRT -9\n"]
    assert await client.ask("p\n", 2) == ["0.00\n", "10.00\n"]
    faults.clear()
    assert await client.ask("P 20 20\n") == ["RPRT 0\n"]


async def test_error_reply_fault_answers_timeout_code(
    client: RawClient, faults: FaultInjector
) -> None:
    faults.inject(FaultKind.ERROR_REPLY)
    assert await client.ask("p\n") == ["RPRT -5\n"]
    assert await client.ask("+P 1 20\n", 2) == ["set_pos: 1 20\n", "RPRT -5\n"]
    faults.clear()
    assert await client.ask("p\n", 2) == ["0.00\n", "10.00\n"]


async def test_hang_fault_drops_replies_then_recovers(
    client: RawClient, faults: FaultInjector, clock: WarpClock
) -> None:
    faults.inject(FaultKind.HANG, duration=clock.rate * 0.3)  # 0.3 s of wall time
    await client.send("p\n")
    assert await client.nothing_within(0.1)
    await asyncio.sleep(0.3)
    assert await client.ask("p\n", 2) == ["0.00\n", "10.00\n"]


async def test_garbage_fault_replaces_the_reply(client: RawClient, faults: FaultInjector) -> None:
    faults.inject(FaultKind.GARBAGE)
    await client.send("p\n")
    data = await asyncio.wait_for(client.reader.readexactly(len(b"0.00\n10.00\n")), TIMEOUT)
    assert data != b"0.00\n10.00\n"


async def test_slow_fault_delays_replies_in_order(
    client: RawClient, faults: FaultInjector, clock: WarpClock
) -> None:
    faults.inject(FaultKind.SLOW, delay_s=clock.rate * 0.3)  # 0.3 s of wall time
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await client.send("S\np\n")
    assert await client.lines(3) == ["RPRT 0\n", "0.00\n", "10.00\n"]
    assert loop.time() - t0 >= 0.25


async def test_disconnect_fault_closes_and_refuses(
    server: RotctldServer, client: RawClient, faults: FaultInjector, clock: WarpClock
) -> None:
    faults.inject(FaultKind.DISCONNECT, duration=clock.rate * 0.5)
    data = await asyncio.wait_for(client.reader.read(), TIMEOUT)
    assert data == b""  # the server closed our connection
    other = await RawClient.connect(server.port)
    assert await asyncio.wait_for(other.reader.read(), TIMEOUT) == b""
    await other.close()
    await asyncio.sleep(0.6)
    again = await RawClient.connect(server.port)
    try:
        assert await again.ask("p\n", 2) == ["0.00\n", "10.00\n"]
    finally:
        await again.close()


async def test_watchdog_stops_a_program_track_stream_that_goes_silent(
    clock: WarpClock, model: MountModel
) -> None:
    limits, park = model.limits, model.park_position
    model = MountModel(clock, limits, park=park, settle_s=0.2, watchdog_s=10.0, name="wd")
    srv = await serve_rotctld(model)
    c = await RawClient.connect(srv.port)
    try:
        for i in range(4):  # a stream of set_pos, well inside the 10 s (0.2 s wall) watchdog
            assert await c.ask(f"P {i * 0.1:.1f} 20\n") == ["RPRT 0\n"]
        assert await c.ask("P 200 20\n") == ["RPRT 0\n"]  # 40 s away at 5 deg/s
        await asyncio.sleep(0.6)  # 30 clock seconds of silence
        assert model.watchdog_trips == 1
        assert not model.is_moving()
        az = float((await c.ask("p\n", 2))[0])
        assert 10.0 < az < 150.0
    finally:
        await c.close()
        await srv.close()
