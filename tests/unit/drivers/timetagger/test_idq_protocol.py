"""IDQ driver: byte-exact SCPI and DataLinkTarget exchanges over real ZeroMQ sockets.

The peers are ZeroMQ ROUTER sockets on 127.0.0.1 that check every request against a script
(ROUTER rather than REP so that a scripted "no reply" is possible). The request and reply
bytes follow protocols.md §3a (docs/devices/idq-emulator.md for the error texts). The DLT
start/stop exchange with per-input streams is scripted in test_idq_dlt_script.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

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
from tests.support.clocks import StepClock
from tests.unit.drivers.timetagger.zmqpeer import Script, ScriptedPeer

IDN = b"ID Quantique,ID1000 (qgs emulator),EMU0001,1.0.0"
NO_INPUT_5 = b"SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE: channel 5 does not exist; inputs are 1..4"
PROBE: Script = [
    (b"INPU1:ENAB?;:INPU2:ENAB?;:INPU3:ENAB?;:INPU4:ENAB?", b"ON\nON\nOFF\nON"),
    (b"INPU5:ENAB?", NO_INPUT_5),
]
CONNECT: Script = [(b"*IDN?", IDN), (b"DEVI:RES:BWID?", b"1"), *PROBE]
DLT_CONNECT: Script = [(b"list", b'{"ids": []}')]


@contextlib.asynccontextmanager
async def tagger(
    scpi: Script,
    dlt: Script | None = None,
    *,
    timeout: float = 1.0,
    query: str = "",
    connect: Script = CONNECT,
) -> AsyncIterator[IDQTimeTagger]:
    peer = ScriptedPeer([*connect, *scpi])
    dlt_peer = ScriptedPeer([*DLT_CONNECT, *(dlt or [])])
    url = f"idq+zmq://127.0.0.1:{peer.port}?dlt={dlt_peer.port}&timeout_s={timeout}{query}"
    device = IDQTimeTagger.from_url(parse_device_url(url), StepClock.still())
    try:
        await device.connect()
        yield device
    finally:
        await device.close()
        await peer.finish()
        await dlt_peer.finish()


async def test_identity_bin_width_and_inputs_are_read_on_connect() -> None:
    async with tagger([]) as device:
        assert device.identity == IDN.decode()
        assert device.bin_width_ps == 1.0
        assert device.inputs == (1, 2, 3, 4)


async def test_more_inputs_are_probed_one_at_a_time() -> None:
    probe: Script = [
        (b"*IDN?", IDN),
        (b"DEVI:RES:BWID?", b"1"),
        (b"INPU1:ENAB?;:INPU2:ENAB?;:INPU3:ENAB?;:INPU4:ENAB?", b"ON\nON\nON\nON"),
        (b"INPU5:ENAB?", b"ON"),
        (b"INPU6:ENAB?", b"OFF"),
        (b"INPU7:ENAB?", b"SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE: channel 7 does not exist"),
    ]
    async with tagger([], connect=probe) as device:
        assert device.inputs == (1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (b"ON\nSCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE: 2\nx\ny", None, ""),  # 1 input
        (b"SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE: 1\na\nb\nc", ProtocolError, "no inputs"),
        (b"SCPI_ERR_UNDEFINED_HEADER: INPU1:ENAB\na\nb\nc", ProtocolError, "UNDEFINED"),
        (b"ON\nON", ProtocolError, "answered 2 lines"),
    ],
)
async def test_input_probe_replies(
    reply: bytes, error: type[Exception] | None, message: str
) -> None:
    connect: Script = [
        (b"*IDN?", IDN),
        (b"DEVI:RES:BWID?", b"1"),
        (b"INPU1:ENAB?;:INPU2:ENAB?;:INPU3:ENAB?;:INPU4:ENAB?", reply),
    ]
    if error is None:
        async with tagger([], connect=connect) as device:
            assert device.inputs == (1,)
        return
    peer = ScriptedPeer(connect)
    dlt_peer = ScriptedPeer([])
    url = f"idq+zmq://127.0.0.1:{peer.port}?dlt={dlt_peer.port}&timeout_s=1"
    device = IDQTimeTagger.from_url(parse_device_url(url), StepClock.still())
    try:
        with pytest.raises(error, match=message):
            await device.connect()
    finally:
        await device.close()
        await peer.finish()
        await dlt_peer.finish()


async def test_configure_sends_enable_threshold_and_delay_then_rates() -> None:
    script: Script = [
        (b"INPU1:ENAB ON", b""),
        (b"INPU1:THRE -0.400V", b""),
        (b"DELA1:VALU 0", b""),
        (b"INPU2:ENAB OFF", b""),
        (b"INPU3:ENAB ON", b""),
        (b"INPU3:THRE -0.250V", b""),
        (b"DELA3:VALU 1500", b""),
        (b"INPU4:ENAB OFF", b""),
        # one chained message; COUN? counts over INTE (ms): rate = count * 1000 / INTE
        (b"INPU1:COUN?;:INPU3:COUN?", b"1200\n4000"),
        # the integration time: an optional probe (not in §3a), asked once per connection
        (b"INPU1:COUN:INTE?;:INPU3:COUN:INTE?", b"1000\n500"),
        (b"INPU1:COUN?;:INPU3:COUN?", b"600\n1000"),
    ]
    async with tagger(script) as device:
        await device.configure(
            {1: ChannelConfig(), 3: ChannelConfig(threshold_v=-0.25, delay_ps=1500)}
        )
        assert await device.count_rates() == {1: 1200.0, 3: 8000.0}
        assert await device.count_rates() == {1: 600.0, 3: 2000.0}


async def test_a_refused_integration_probe_degrades_to_one_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = b"SCPI_ERR_UNDEFINED_HEADER: not a documented query"
    script: Script = [
        (b"INPU2:COUN?", b"250"),
        (b"INPU2:COUN:INTE?", refused),
        (b"INPU2:COUN?", b"300"),  # not asked again on this connection
    ]
    async with tagger(script) as device:
        device._enabled = [2]
        with caplog.at_level("INFO", logger="drivers.timetagger.idq"):
            assert await device.count_rates() == {2: 250.0}
        assert await device.count_rates() == {2: 300.0}
    assert any("INTE? refused" in r.getMessage() for r in caplog.records)


async def test_a_dlt_that_refuses_list_still_connects(caplog: pytest.LogCaptureFixture) -> None:
    peer = ScriptedPeer(CONNECT)
    dlt_peer = ScriptedPeer([(b"list", b'{"error": {"description": "unknown command"}}')])
    url = f"idq+zmq://127.0.0.1:{peer.port}?dlt={dlt_peer.port}&timeout_s=1"
    device = IDQTimeTagger.from_url(parse_device_url(url), StepClock.still())
    try:
        with caplog.at_level("INFO", logger="drivers.timetagger.idq"):
            await device.connect()
        assert device.identity == IDN.decode()
    finally:
        await device.close()
        await peer.finish()
        await dlt_peer.finish()
    assert any("refuses 'list'" in r.getMessage() for r in caplog.records)


async def test_a_dlt_that_does_not_answer_fails_connect() -> None:
    peer = ScriptedPeer(CONNECT)
    dlt_peer = ScriptedPeer([(b"list", None)])
    url = f"idq+zmq://127.0.0.1:{peer.port}?dlt={dlt_peer.port}&timeout_s=0.3"
    device = IDQTimeTagger.from_url(parse_device_url(url), StepClock.still())
    try:
        with pytest.raises(DeviceTimeout):
            await device.connect()
    finally:
        await device.close()
        await peer.finish()
        await dlt_peer.finish()


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ({7: ChannelConfig()}, "inputs \\[7\\] do not exist"),
        ({0: ChannelConfig()}, "inputs \\[0\\] do not exist"),
        ({1: ChannelConfig(threshold_v=-3.0)}, "threshold -3 V is outside"),
        ({2: ChannelConfig(delay_ps=-5)}, "delay -5 ps is outside"),
    ],
)
async def test_bad_configuration_is_refused_before_sending(
    channels: dict[int, ChannelConfig], message: str
) -> None:
    async with tagger([]) as device:  # the script has nothing: any request would fail it
        with pytest.raises(LimitViolation, match=message):
            await device.configure(channels)


async def test_inputs_declared_in_the_url_are_not_probed() -> None:
    script: Script = [(b"INPU6:COUN?", b"7"), (b"INPU6:COUN:INTE?", b"1000")]
    connect = CONNECT[:2]  # *IDN? and DEVI:RES:BWID? only
    async with tagger(script, query="&channels=8", connect=connect) as device:
        assert device.inputs == tuple(range(1, 9))
        device._enabled = [6]  # as after configure({6: ...}); keeps the script short
        assert await device.count_rates() == {6: 7.0}


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (b"SCPI_ERR_UNDEFINED_HEADER: unknown command 'INPU1:FOO'", ProtocolError, "FOO"),
        (b"SCPI_ERR_SYNTAX_ERROR: malformed header", ProtocolError, "SYNTAX"),
        (b"SCPI_ERR_MISSING_PARAMETER: a value is required", ProtocolError, "MISSING"),
        (b"SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE: channel 9", LimitViolation, "channels="),
        (b"SCPI_ERR_DATA_OUT_OF_RANGE: threshold 5 V", LimitViolation, "5 V"),
        (b"SCPI_ERR_ILLEGAL_PARAMETER_VALUE: 'MAYBE'", LimitViolation, "MAYBE"),
        (b"SCPI_ERR_EXECUTION_ERROR", DeviceFault, "EXECUTION"),
        (b"SCPI_ERR_HARDWARE_FAILURE", DeviceFault, "HARDWARE"),
        (b"unexpected chatter", ProtocolError, "expected nothing"),
        (b"\xff\xfe", ProtocolError, "non-UTF-8"),
    ],
)
async def test_error_replies_are_typed(reply: bytes, error: type[Exception], text: str) -> None:
    async with tagger([(b"INPU1:ENAB ON", reply)]) as device:
        with pytest.raises(error, match=text):
            await device.scpi("INPU1:ENAB ON")


async def test_error_line_inside_a_multi_line_reply() -> None:
    script: Script = [(b"INPU1:COUN?;:INPU2:COUN?", b"12\nSCPI_ERR_UNDEFINED_HEADER: x")]
    async with tagger(script) as device:
        device._enabled = [1, 2]
        with pytest.raises(ProtocolError, match="UNDEFINED_HEADER"):
            await device.count_rates()


@pytest.mark.parametrize(
    ("reply", "message"),
    [(b"12", "answered 1 lines; expected 2"), (b"lots\n1000", "not a number")],
)
async def test_malformed_rate_replies(reply: bytes, message: str) -> None:
    async with tagger([(b"INPU1:COUN?;:INPU2:COUN?", reply)]) as device:
        device._enabled = [1, 2]
        with pytest.raises(ProtocolError, match=message):
            await device.count_rates()


async def test_silent_device_times_out_and_the_socket_is_recreated() -> None:
    script: Script = [(b"REC:STAG?", None), (b"REC:STAG?", b"STOPPED")]
    async with tagger(script, timeout=0.3) as device:
        with pytest.raises(DeviceTimeout, match="REC:STAG"):
            await device.scpi("REC:STAG?")
        # a REQ socket that missed its reply cannot send again: it was replaced
        assert await device.scpi("REC:STAG?") == "STOPPED"


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


async def test_nothing_listening_is_bounded() -> None:
    from tests.conftest import free_tcp_port

    port = free_tcp_port()
    url = f"idq+zmq://127.0.0.1:{port}?dlt={port}&timeout_s=0.2"
    device = IDQTimeTagger.from_url(parse_device_url(url), StepClock.still())
    with pytest.raises(DeviceTimeout, match=r"\*IDN\?"):
        await device.connect()
    with pytest.raises(NotConnected):
        await device.scpi("*IDN?")
    await device.close()


async def test_stream_before_start_is_not_connected() -> None:
    device = IDQTimeTagger.from_url(
        parse_device_url("idq+zmq://127.0.0.1:5555"),
        StepClock.still(),
    )
    with pytest.raises(NotConnected, match="start"):
        async for _ in device.stream():
            pass


def test_numbers_with_units() -> None:
    assert parse_number(" -0.4V ", what="x", device="d") == -0.4
    assert parse_number("1000 TB", what="x", device="d") == 1000.0
    with pytest.raises(ProtocolError):
        parse_number("1,000", what="x", device="d")


def test_from_url_parameters() -> None:
    device = IDQTimeTagger.from_url(
        parse_device_url("idq+zmq://127.0.0.1:5555?dlt=6061&stream=4300&channels=8"),
        StepClock.still(),
    )
    assert device.url.endswith("channels=8")
    assert device.inputs == tuple(range(1, 9))
    bad = {
        "dlt=0": "dlt must be a port",
        "stream=70000": "stream must be a port",
        "channels=0": "channels must be",
        "timeout_s=-1": "timeout_s must be",
        "idle_s=x": "idle_s must be",
        "stall_s=0": "stall_s must be",
        "hold=0": "hold must be",
        "dlt_host=a/b": "is not a host",
        "dtl=1": "unknown parameter",
    }
    for query, message in bad.items():
        with pytest.raises(DeviceURLError, match=message):
            IDQTimeTagger.from_url(
                parse_device_url(f"idq+zmq://127.0.0.1:5555?{query}"),
                StepClock.still(),
            )
