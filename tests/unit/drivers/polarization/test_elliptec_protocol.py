"""Byte-exact ELL14 exchanges (protocols.md §2a) through a scripted transport."""

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
from drivers.polarization.elliptec import (
    MOVE_PAUSE_S,
    ElliptecRotator,
    counts_to_hex,
    hex_to_counts,
)
from drivers.registry import parse_device_url
from drivers.testing.protocol import expected_protocol
from tests.support.clocks import StepClock

# model 0E (ELL14), serial, year, fw 17, hw 00, travel 0x168 = 360 deg, 0x23000 = 143360 pulses
IN_DATA = b"0E1140012320231700016800023000"
IN = (b"0in", b"0IN" + IN_DATA + b"\r\n")
URL = "elliptec+serial:///dev/ttyUSB0?address=0"


def rotator(transport: object, clock: StepClock | None = None) -> ElliptecRotator:
    return ElliptecRotator(url=URL, clock=clock or StepClock(), transport=transport)  # type: ignore[arg-type]


def test_in_reply_is_thirty_characters() -> None:
    assert len(IN_DATA) == 30


def test_hex_positions_are_twos_complement() -> None:
    assert counts_to_hex(35840) == "00008C00"
    assert counts_to_hex(-3982) == "FFFFF072"
    assert hex_to_counts("FFFFF072") == -3982
    assert hex_to_counts("7FFFFFFF") == 2**31 - 1
    with pytest.raises(ValueError, match="signed 32-bit"):
        counts_to_hex(2**31)


async def test_connect_reads_counts_per_turn_from_in() -> None:
    async with expected_protocol([IN]) as transport:
        rot = rotator(transport)
        await rot.connect()
        assert rot.info.model == 0x0E
        assert rot.info.travel == 360
        assert rot.info.pulses == 143360
        assert rot.info.serial == "11400123"


async def test_move_to_sends_hex_counts_and_waits_for_po() -> None:
    script = [
        IN,
        (b"0ma00008C00", b"0PO00008C00\r\n"),  # 90 deg = 35840 counts (§2a example)
        (b"0gp", b"0PO00008C00\r\n"),
    ]
    async with expected_protocol(script) as transport:
        rot = rotator(transport)
        await rot.connect()
        await rot.move_to(90.0)
        assert await rot.angle() == pytest.approx(90.0)


async def test_angles_are_taken_modulo_360() -> None:
    # -10 deg -> 350 deg = 139378 counts; 390 deg -> 30 deg = 11947 counts
    script = [
        IN,
        (b"0ma00022072", b"0PO00022072\r\n"),
        (b"0ma00002EAB", b"0PO00002EAB\r\n"),
    ]
    clock = StepClock()
    async with expected_protocol(script) as transport:
        rot = rotator(transport, clock)
        await rot.connect()
        await rot.move_to(-10.0)
        await rot.move_to(390.0)
        # the documented pause between moves was kept (clock seconds)
        assert clock.sleeps[-1] == pytest.approx(MOVE_PAUSE_S)


async def test_negative_position_reads_as_angle_in_range() -> None:
    async with expected_protocol([IN, (b"0gp", b"0POFFFFF072\r\n")]) as transport:
        rot = rotator(transport)
        await rot.connect()
        assert await rot.angle() == pytest.approx(350.0, abs=0.01)


async def test_home_and_stop() -> None:
    script = [IN, (b"0ho0", b"0PO00000000\r\n"), (b"0st", b"0GS00\r\n")]
    async with expected_protocol(script) as transport:
        rot = rotator(transport)
        await rot.connect()
        await rot.home()
        await rot.stop()


async def test_background_messages_are_skipped() -> None:
    script = [IN, (b"0gp", b"0BS00\r\n0BO00001000\r\n0PO00002000\r\n")]
    async with expected_protocol(script) as transport:
        rot = rotator(transport)
        await rot.connect()
        assert await rot.angle() == pytest.approx(0x2000 / (143360 / 360))


@pytest.mark.parametrize(
    ("code", "error", "meaning"),
    [
        (b"02", DeviceTimeout, "mechanical timeout"),
        (b"03", ProtocolError, "command error"),
        (b"0C", LimitViolation, "out of range"),
        (b"0B", DeviceFault, "motor error"),
        (b"0D", DeviceFault, "over-current"),
    ],
)
async def test_move_status_codes_raise_typed_errors_and_clear_the_fault(
    code: bytes, error: type[Exception], meaning: str
) -> None:
    script = [IN, (b"0ma00008C00", b"0GS" + code + b"\r\n"), (b"0gs", b"0GS00\r\n")]
    async with expected_protocol(script) as transport:
        rot = rotator(transport)
        await rot.connect()
        with pytest.raises(error, match=meaning):
            await rot.move_to(90.0)


async def test_query_answered_with_error_status() -> None:
    script = [IN, (b"0gp", b"0GS09\r\n"), (b"0gs", b"0GS00\r\n")]
    async with expected_protocol(script) as transport:
        rot = rotator(transport)
        await rot.connect()
        with pytest.raises(DeviceFault, match="busy"):
            await rot.angle()


@pytest.mark.parametrize(
    "garbage",
    [
        b"0PO12\r\n",  # too short for PO
        b"0XY00000000\r\n",  # unknown reply command
        b"1PO00000000\r\n",  # another bus address
        b"0POzzzzzzzz\r\n",  # not hex
        b"\xff\xfe\r\n",  # not ASCII
    ],
)
async def test_garbage_replies_raise_protocol_error(garbage: bytes) -> None:
    async with expected_protocol([IN, (b"0gp", garbage)]) as transport:
        rot = rotator(transport)
        await rot.connect()
        with pytest.raises(ProtocolError):
            await rot.angle()


async def test_partial_reply_times_out() -> None:
    async with expected_protocol([IN, (b"0gp", b"0PO0000")]) as transport:
        rot = rotator(transport)
        await rot.connect()
        with pytest.raises(DeviceTimeout, match="no complete reply"):
            await rot.angle()


async def test_silent_device_times_out_on_connect() -> None:
    async with expected_protocol([(b"0in", None)]) as transport:
        rot = rotator(transport)
        with pytest.raises(DeviceTimeout, match="'in'"):
            await rot.connect()


async def test_move_without_reply_times_out_and_stops_the_stage() -> None:
    script = [
        IN,
        (b"0ma00008C00", None),
        (b"0st", b"0PO00004000\r\n0GS00\r\n"),  # stopped part-way, then the stop's status
    ]
    async with expected_protocol(script) as transport:
        rot = rotator(transport)
        await rot.connect()
        with pytest.raises(DeviceTimeout, match="end of move"):
            await rot.move_to(90.0)


async def test_other_bus_address() -> None:
    script = [(b"Ain", b"AIN" + IN_DATA + b"\r\n"), (b"Agp", b"APO00000010\r\n")]
    async with expected_protocol(script) as transport:
        rot = ElliptecRotator(url=URL, clock=StepClock(), transport=transport, address=10)
        await rot.connect()
        assert await rot.angle() == pytest.approx(16 / (143360 / 360))


async def test_in_reply_with_zero_pulses_is_rejected() -> None:
    bad = b"0E11400123202317000168" + b"00000000"
    async with expected_protocol([(b"0in", b"0IN" + bad + b"\r\n")]) as transport:
        rot = rotator(transport)
        with pytest.raises(ProtocolError, match="pulses 0"):
            await rot.connect()


async def test_use_before_connect_is_not_connected() -> None:
    rot = ElliptecRotator(url=URL, clock=StepClock(), transport_url="serial:///dev/null")
    with pytest.raises(NotConnected):
        await rot.angle()
    with pytest.raises(NotConnected):
        await rot.move_to(10.0)
    await rot.close()
    await rot.close()


def test_move_bound_grows_with_distance() -> None:
    rot = ElliptecRotator(url=URL, clock=StepClock(), transport_url="serial:///dev/null")
    assert rot.move_bound_s(180.0) > rot.move_bound_s(10.0) > rot.move_bound_s(0.0) > 0


def test_from_url_reads_address_and_rejects_bad_ones() -> None:
    rot = ElliptecRotator.from_url(
        parse_device_url("elliptec+serial:///dev/ttyUSB1?address=b"), StepClock()
    )
    assert rot.url.endswith("address=b")
    with pytest.raises(DeviceURLError, match="one hex digit"):
        ElliptecRotator.from_url(
            parse_device_url("elliptec+serial:///dev/ttyUSB1?address=16"), StepClock()
        )
    with pytest.raises(DeviceURLError, match="unknown parameter"):
        ElliptecRotator.from_url(
            parse_device_url("elliptec+serial:///dev/ttyUSB1?adress=1"), StepClock()
        )


def test_from_url_speed_and_timeout() -> None:
    rot = ElliptecRotator.from_url(
        parse_device_url("elliptec+serial:///dev/ttyUSB1?speed=90&timeout_s=0.5"), StepClock()
    )
    assert rot.move_bound_s(90.0) == pytest.approx(1.0 + 2.0 * 90.0 / 90.0)
    assert rot._reply_timeout == 0.5
    for bad in ("speed=0", "speed=fast", "timeout_s=-1", "timeout_s=nan"):
        with pytest.raises(DeviceURLError, match="must be a number"):
            ElliptecRotator.from_url(
                parse_device_url(f"elliptec+serial:///dev/ttyUSB1?{bad}"), StepClock()
            )
