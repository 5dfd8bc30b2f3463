"""Byte-exact SMC100 exchanges (protocols.md §2c) through a scripted transport."""

from __future__ import annotations

import pytest

from drivers.errors import (
    DeviceFault,
    DeviceTimeout,
    DeviceURLError,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.polarization.smc100 import (
    ControllerState,
    SMC100Rotator,
    format_number,
)
from drivers.registry import parse_device_url
from drivers.testing.protocol import expected_protocol
from tests.support.clocks import StepClock

URL = "smc100+visa://ASRL/dev/ttyUSB2::INSTR"
CONNECT = [
    (b"1ID?\r\n", b"1IDURS100CC_SIM\r\n"),
    (b"1VA?\r\n", b"1VA20\r\n"),
    (b"1SL?\r\n", b"1SL-170\r\n"),
    (b"1SR?\r\n", b"1SR170\r\n"),
    (b"1TS\r\n", b"1TS000033\r\n"),
]


def stage(transport: object, clock: StepClock | None = None) -> SMC100Rotator:
    return SMC100Rotator(url=URL, clock=clock or StepClock(), transport=transport)  # type: ignore[arg-type]


def test_ts_reply_decodes_state_and_error_bits() -> None:
    state = ControllerState.parse("00230A", device="x")
    assert state.name == "NOT REFERENCED"
    assert "following error" in state.error_text()
    assert "negative end of run" in state.error_text()
    assert ControllerState.parse("000033", device="x").name == "READY"
    with pytest.raises(ProtocolError):
        ControllerState.parse("33", device="x")


def test_numbers_are_fixed_point() -> None:
    assert format_number(179.5) == "179.5"
    assert format_number(-10.0) == "-10"
    assert format_number(1e-9) == "0"


async def test_connect_reads_identity_speed_and_limits() -> None:
    async with expected_protocol(CONNECT) as transport:
        smc = stage(transport)
        await smc.connect()
        assert smc.identity == "URS100CC_SIM"
        assert smc.speed_deg_s == 20.0
        assert smc.limits_deg == (-170.0, 170.0)


async def test_move_polls_state_until_ready() -> None:
    script = [
        *CONNECT,
        (b"1TP\r\n", b"1TP0.00000\r\n"),
        (b"1PA45\r\n", None),
        (b"1TE\r\n", b"1TE@\r\n"),
        (b"1TS\r\n", b"1TS000028\r\n"),  # MOVING
        (b"1TS\r\n", b"1TS000033\r\n"),  # READY from MOVING
        (b"1TP\r\n", b"1TP45.00000\r\n"),
    ]
    clock = StepClock()
    async with expected_protocol(script) as transport:
        smc = stage(transport, clock)
        await smc.connect()
        await smc.move_to(45.0)
        assert await smc.angle() == pytest.approx(45.0)
        assert clock.sleeps == [pytest.approx(0.1)]


async def test_target_goes_to_the_equivalent_inside_the_limits() -> None:
    # limits -170..170: 350 deg is commanded as -10; angle() folds it back to 350
    script = [
        *CONNECT,
        (b"1TP\r\n", b"1TP0\r\n"),
        (b"1PA-10\r\n", None),
        (b"1TE\r\n", b"1TE@\r\n"),
        (b"1TS\r\n", b"1TS000033\r\n"),
        (b"1TP\r\n", b"1TP-10.00000\r\n"),
    ]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        await smc.move_to(350.0)
        assert await smc.angle() == pytest.approx(350.0)


async def test_unreachable_angle_is_refused_before_moving() -> None:
    async with expected_protocol([*CONNECT, (b"1TP\r\n", b"1TP0\r\n")]) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(LimitViolation, match="inside the limits"):
            await smc.move_to(180.0)  # 180 and -180 both lie outside -170..170


async def test_home_from_not_referenced() -> None:
    script = [
        *CONNECT[:4],
        (b"1TS\r\n", b"1TS00000A\r\n"),
        (b"1TS\r\n", b"1TS00000A\r\n"),
        (b"1OR\r\n", None),
        (b"1TE\r\n", b"1TE@\r\n"),
        (b"1TS\r\n", b"1TS00001E\r\n"),  # HOMING
        (b"1TS\r\n", b"1TS000032\r\n"),  # READY from HOMING
        (b"1TP\r\n", b"1TP0\r\n"),
        (b"1PA0\r\n", None),
        (b"1TE\r\n", b"1TE@\r\n"),
        (b"1TS\r\n", b"1TS000033\r\n"),
    ]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        await smc.home()


async def test_move_when_not_referenced_names_the_fix() -> None:
    script = [
        *CONNECT,
        (b"1TP\r\n", b"1TP0\r\n"),
        (b"1PA30\r\n", None),
        (b"1TE\r\n", b"1TEH\r\n"),
    ]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(DeviceFault, match="NOT REFERENCED") as info:
            await smc.move_to(30.0)
        assert "home()" in str(info.value)


@pytest.mark.parametrize(
    ("letter", "error"),
    [
        (b"C", LimitViolation),
        (b"G", LimitViolation),
        (b"J", DeviceFault),
        (b"M", DeviceFault),
        (b"A", ProtocolError),
        (b"S", DeviceTimeout),
        (b"?", ProtocolError),  # not an error letter at all
    ],
)
async def test_error_letters_map_to_typed_errors(letter: bytes, error: type[Exception]) -> None:
    script = [*CONNECT, (b"1ST\r\n", None), (b"1TE\r\n", b"1TE" + letter + b"\r\n")]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(error):
            await smc.stop()


async def test_motion_ending_in_fault_reports_positioner_errors() -> None:
    script = [
        *CONNECT,
        (b"1TP\r\n", b"1TP0\r\n"),
        (b"1PA90\r\n", None),
        (b"1TE\r\n", b"1TE@\r\n"),
        (b"1TS\r\n", b"1TS00200F\r\n"),  # NOT REFERENCED from MOVING, following error
    ]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(DeviceFault, match="following error"):
            await smc.move_to(90.0)


async def test_motion_that_never_ends_times_out_and_stops() -> None:
    moving = (b"1TS\r\n", b"1TS000028\r\n")
    script = [
        *CONNECT,
        (b"1TP\r\n", b"1TP0\r\n"),
        (b"1PA10\r\n", None),
        (b"1TE\r\n", b"1TE@\r\n"),
        *[moving] * 6,
        (b"1ST\r\n", None),
        (b"1TE\r\n", b"1TE@\r\n"),
        (b"1TS\r\n", b"1TS000033\r\n"),  # at rest (READY from MOVING) before raising
    ]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(DeviceTimeout, match="did not finish within"):
            await smc.move_to(10.0, timeout=0.45)


async def test_unanswered_query_asks_te_for_the_reason() -> None:
    script = [*CONNECT, (b"1TP\r\n", None), (b"1TE\r\n", b"1TED\r\n")]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(DeviceFault, match="not allowed"):
            await smc.angle()


@pytest.mark.parametrize(
    "reply",
    [
        b"2TP45\r\n",  # another controller's prefix
        b"1TPabc\r\n",  # not a number
        b"1TP\xff\r\n",  # not ASCII
    ],
)
async def test_garbage_replies_raise_protocol_error(reply: bytes) -> None:
    async with expected_protocol([*CONNECT, (b"1TP\r\n", reply)]) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(ProtocolError):
            await smc.angle()


async def test_partial_reply_times_out() -> None:
    script = [*CONNECT, (b"1TP\r\n", b"1TP4"), (b"1TE\r\n", b"1TE@\r\n")]
    async with expected_protocol(script) as transport:
        smc = stage(transport)
        await smc.connect()
        with pytest.raises(DeviceTimeout, match="no complete reply"):
            await smc.angle()


async def test_nul_after_power_cycle_is_tolerated() -> None:
    async with expected_protocol([*CONNECT, (b"1TP\r\n", b"\x001TP12.5\r\n")]) as transport:
        smc = stage(transport)
        await smc.connect()
        assert await smc.angle() == pytest.approx(12.5)


async def test_use_before_connect_is_not_connected() -> None:
    smc = SMC100Rotator(url=URL, clock=StepClock(), transport_url="visa://ASRL/dev/null::INSTR")
    with pytest.raises(NotConnected):
        await smc.angle()
    await smc.close()
    await smc.close()


def test_from_url_address() -> None:
    smc = SMC100Rotator.from_url(parse_device_url(URL + "?address=3"), StepClock())
    assert smc.url.endswith("address=3")
    with pytest.raises(DeviceURLError, match=r"1\.\.31"):
        SMC100Rotator.from_url(parse_device_url(URL + "?address=0"), StepClock())


def test_from_url_gives_an_asrl_line_the_controllers_settings() -> None:
    from drivers.transport.url import VisaAddress, parse_transport_url

    def line(url: str) -> VisaAddress:
        smc = SMC100Rotator.from_url(parse_device_url(url), StepClock())
        address = parse_transport_url(smc._transport_url or "")
        assert isinstance(address, VisaAddress)
        return address

    default = line(URL).settings
    assert default is not None
    assert (default.baud, default.bytesize, default.parity) == (57600, 8, "N")
    assert default.xonxoff
    slow = line(URL + "?baud=9600&flow=none&timeout_s=0.5").settings
    assert slow is not None
    assert (slow.baud, slow.xonxoff) == (9600, False)
    assert line("smc100+visa://TCPIP::192.0.2.5::5001::SOCKET").settings is None
    for bad, message in (("timeout_s=0", "timeout_s"), ("speed=3", "unknown parameter")):
        with pytest.raises(DeviceURLError, match=message):
            SMC100Rotator.from_url(parse_device_url(f"{URL}?{bad}"), StepClock())
