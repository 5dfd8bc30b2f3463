"""IDQ driver: byte-exact SCPI and DataLinkTarget exchanges over real ZeroMQ sockets.

The peers are ZeroMQ ROUTER sockets on 127.0.0.1 that check every request against a script
(ROUTER rather than REP so that a scripted "no reply" is possible).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import zmq
import zmq.asyncio

from drivers.datatypes import ChannelConfig
from drivers.errors import (
    DeviceFault,
    DeviceTimeout,
    DeviceURLError,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.registry import parse_device_url
from drivers.timetagger.idq import IDQTimeTagger, parse_number
from drivers.timetagger.zmqlink import ZmqRequester


class StepClock:
    rate = 1.0

    def now(self) -> float:
        return 0.0

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(0.0, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(0)

    def to_wall(self, seconds: float) -> float:
        return seconds


Script = list[tuple[bytes, bytes | None]]


class ScriptedPeer:
    """A ROUTER that expects ``script`` requests in order and sends the scripted replies."""

    def __init__(self, script: Script) -> None:
        self.script = list(script)
        self.sock = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.errors: list[str] = []
        self.used = 0
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        for expected, reply in self.script:
            ident, empty, payload = await self.sock.recv_multipart()
            self.used += 1
            if payload != expected:
                self.errors.append(f"expected {expected!r}, got {payload!r}")
                return
            if reply is not None:
                await self.sock.send_multipart([ident, empty, reply])

    async def finish(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.shield(self.task)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sock.close(linger=0)
        assert not self.errors, self.errors
        assert self.used == len(self.script), f"only {self.used}/{len(self.script)} pairs used"


@contextlib.asynccontextmanager
async def tagger(
    scpi: Script, dlt: Script | None = None, *, timeout: float = 1.0
) -> AsyncIterator[IDQTimeTagger]:
    peer = ScriptedPeer([(b"*IDN?", b"IDQ,ID1000-SIM,0,1.0"), *scpi])
    dlt_peer = ScriptedPeer(dlt or [])
    device = IDQTimeTagger(
        url=f"idq+zmq://127.0.0.1:{peer.port}",
        clock=StepClock(),
        scpi_port=peer.port,
        dlt_port=dlt_peer.port,
        request_timeout_s=timeout,
    )
    try:
        await device.connect()
        yield device
    finally:
        await device.close()
        await peer.finish()
        await dlt_peer.finish()


async def test_identity_is_read_on_connect() -> None:
    async with tagger([]) as device:
        assert device.identity == "IDQ,ID1000-SIM,0,1.0"


async def test_configure_sends_enable_threshold_and_delay() -> None:
    script: Script = [
        (b"INPU1:ENAB ON", b""),
        (b"INPU1:THRE -0.400V", b""),
        (b"DELA1:VALU 0", b""),
        (b"INPU2:ENAB OFF", b""),
        (b"INPU3:ENAB ON", b""),
        (b"INPU3:THRE -0.250V", b""),
        (b"DELA3:VALU 1500", b""),
        (b"INPU4:ENAB OFF", b""),
        (b"INPU1:COUN?", b"1200.5"),
        (b"INPU3:COUN?", b"8e3 Hz"),
    ]
    async with tagger(script) as device:
        await device.configure(
            {1: ChannelConfig(), 3: ChannelConfig(threshold_v=-0.25, delay_ps=1500)}
        )
        assert await device.count_rates() == {1: 1200.5, 3: 8000.0}


async def test_unknown_input_is_refused_before_sending() -> None:
    async with tagger([]) as device:
        with pytest.raises(LimitViolation, match="inputs \\[7\\]"):
            await device.configure({7: ChannelConfig()})


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"SCPI_ERR_UNKNOWN_COMMAND: INPU1:FOO", ProtocolError),
        (b"SCPI_ERR_SYNTAX", ProtocolError),
        (b"SCPI_ERR_PARAM_OUT_OF_RANGE", LimitViolation),
        (b"SCPI_ERR_HARDWARE_FAILURE", DeviceFault),
        (b"unexpected chatter", ProtocolError),  # a command must answer nothing
        (b"\xff\xfe", ProtocolError),
    ],
)
async def test_error_replies_are_typed(reply: bytes, error: type[Exception]) -> None:
    async with tagger([(b"INPU1:ENAB ON", reply)]) as device:
        with pytest.raises(error):
            await device.scpi("INPU1:ENAB ON")


async def test_garbage_count_rate_is_a_protocol_error() -> None:
    async with tagger([(b"INPU1:COUN?", b"lots")]) as device:
        with pytest.raises(ProtocolError, match="not a number"):
            await device.scpi_number("INPU1:COUN?")


async def test_silent_device_times_out_and_the_socket_is_recreated() -> None:
    script: Script = [(b"REC:STAGe?", None), (b"REC:STAGe?", b"STOPPED")]
    async with tagger(script, timeout=0.3) as device:
        with pytest.raises(DeviceTimeout, match="REC:STAGe"):
            await device.scpi("REC:STAGe?")
        # a REQ socket that missed its reply cannot send again: the driver replaced it
        assert await device.scpi("REC:STAGe?") == "STOPPED"


async def test_dlt_errors_and_garbage() -> None:
    dlt: Script = [
        (b"list", b'{"error": {"description": "port in use"}}'),
        (b"list", b"not json"),
        (b"list", b"[1, 2]"),
    ]
    async with tagger([], dlt) as device:
        with pytest.raises(DeviceFault, match="port in use"):
            await device.dlt("list")
        with pytest.raises(ProtocolError, match="expected JSON"):
            await device.dlt("list")
        with pytest.raises(ProtocolError, match="not an object"):
            await device.dlt("list")


async def test_requester_is_bounded_when_nobody_listens() -> None:
    req = ZmqRequester("tcp://127.0.0.1:9", timeout_s=0.2, device="idq://x")
    req.open()
    with pytest.raises(DeviceTimeout):
        await req.request(b"*IDN?")
    assert req.recreated == 1
    await req.close()
    with pytest.raises(NotConnected):
        await req.request(b"*IDN?")


def test_numbers_with_units() -> None:
    assert parse_number(" -0.4V ", what="x", device="d") == -0.4
    assert parse_number("1000 TB", what="x", device="d") == 1000.0
    with pytest.raises(ProtocolError):
        parse_number("1,000", what="x", device="d")


def test_from_url_ports() -> None:
    device = IDQTimeTagger.from_url(
        parse_device_url("idq+zmq://127.0.0.1:5555?dlt=6061&stream=4300"), StepClock()
    )
    assert device.url.endswith("stream=4300")
    with pytest.raises(DeviceURLError, match="dlt must be a port"):
        IDQTimeTagger.from_url(parse_device_url("idq+zmq://127.0.0.1:5555?dlt=0"), StepClock())
    with pytest.raises(DeviceURLError, match="unknown parameter"):
        IDQTimeTagger.from_url(parse_device_url("idq+zmq://127.0.0.1:5555?dtl=1"), StepClock())
