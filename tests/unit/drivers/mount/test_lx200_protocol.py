"""Byte-exact LX200 (OnStep alt-az, high precision) exchanges (protocols.md §1a)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import numpy as np
import pytest

from drivers.datatypes import AltAz, MountState, Trajectory
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    DeviceURLError,
    LimitViolation,
    ProtocolError,
)
from drivers.mount.lx200 import LX200Mount
from drivers.mount.options import MountOptions, default_limits
from drivers.registry import open_device
from drivers.testing.protocol import expected_protocol

Pair = tuple[bytes | None, bytes | None]

ACK: Pair = (b"\x06", b"A")
HANDSHAKE: list[Pair] = [ACK, (b":GZ#", b"123*45'30#")]
STOP: Pair = (b":Q#", None)


def here(alt: bytes, az: bytes) -> list[Pair]:
    return [(b":GA#", alt + b"#"), (b":GZ#", az + b"#")]


def goto(alt: bytes, az: bytes, reply: bytes = b"0") -> list[Pair]:
    return [(b":Sa" + alt + b"#", b"1"), (b":Sz" + az + b"#", b"1"), (b":MA#", reply)]


@asynccontextmanager
async def connected(
    script: Sequence[Pair], clock: object, **kwargs: object
) -> AsyncIterator[LX200Mount]:
    async with expected_protocol([*HANDSHAKE, *script]) as transport:
        mount = LX200Mount(transport, clock, **kwargs)  # type: ignore[arg-type]
        await mount.connect()
        yield mount


async def test_connect_high_precision_already(clock: object) -> None:
    async with connected([], clock) as mount:
        assert mount.mode == "A"
        assert mount.is_connected


async def test_connect_toggles_low_precision(clock: object) -> None:
    script = [ACK, (b":GZ#", b"123*45#"), (b":U#", None), (b":GZ#", b"123*45'30#")]
    async with expected_protocol(script) as transport:
        mount = LX200Mount(transport, clock)  # type: ignore[arg-type]
        await mount.connect()


async def test_connect_fails_if_precision_stays_low(clock: object) -> None:
    script = [ACK, (b":GZ#", b"123*45#"), (b":U#", None), (b":GZ#", b"123*45#")]
    async with expected_protocol(script) as transport:
        mount = LX200Mount(transport, clock)  # type: ignore[arg-type]
        with pytest.raises(ProtocolError, match="low precision"):
            await mount.connect()
        assert not mount.is_connected


async def test_ack_is_retried_once(clock: object) -> None:
    script = [(b"\x06", None), ACK, (b":GZ#", b"123*45'30#")]
    async with expected_protocol(script) as transport:
        mount = LX200Mount(transport, clock)  # type: ignore[arg-type]
        await mount.connect()


async def test_ack_silence_is_timeout(clock: object) -> None:
    async with expected_protocol([(b"\x06", None), (b"\x06", None)]) as transport:
        mount = LX200Mount(transport, clock)  # type: ignore[arg-type]
        with pytest.raises(DeviceTimeout):
            await mount.connect()


async def test_ack_garbage(clock: object) -> None:
    async with expected_protocol([(b"\x06", b"Z")]) as transport:
        mount = LX200Mount(transport, clock)  # type: ignore[arg-type]
        with pytest.raises(ProtocolError, match="baud rate"):
            await mount.connect()


async def test_polar_mode_is_accepted(clock: object) -> None:
    script = [(b"\x06", b"P"), (b":GZ#", b"123*45'30#")]
    async with expected_protocol(script) as transport:
        mount = LX200Mount(transport, clock)  # type: ignore[arg-type]
        await mount.connect()
        assert mount.mode == "P"


@pytest.mark.parametrize(
    ("alt", "az", "expected"),
    [
        (b"+45*30'15", b"123*45'30", AltAz(123.758333, 45.504167)),
        (b"-05*00'00", b"000*00'01", AltAz(1 / 3600, -5.0)),
        (b"+45\xdf30:15", b"123\xdf45:30", AltAz(123.758333, 45.504167)),  # Meade 0xDF, INDI ':'
        (b"+10*00'00.500", b"010*00'00.250", AltAz(10 + 0.25 / 3600, 10 + 0.5 / 3600)),
    ],
)
async def test_position(clock: object, alt: bytes, az: bytes, expected: AltAz) -> None:
    async with connected(here(alt, az), clock) as mount:
        got = await mount.position()
        assert got.az_deg == pytest.approx(expected.az_deg, abs=1e-6)
        assert got.el_deg == pytest.approx(expected.el_deg, abs=1e-6)


async def test_position_mapped_into_configured_azimuth_range(clock: object) -> None:
    limits = default_limits(-180.0, 180.0, 0.0, 90.0)
    async with connected(here(b"+10*00'00", b"270*00'00"), clock, limits=limits) as mount:
        assert await mount.position() == AltAz(-90.0, 10.0)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"hello#", ProtocolError),
        (b"+45*75'00#", ProtocolError),  # minutes >= 60
        (b"+45*30'15", DeviceTimeout),  # partial: no '#'
        (None, DeviceTimeout),
        (b"x" * 80 + b"#", ProtocolError),  # no '#' within the reply bound
    ],
)
async def test_position_errors(clock: object, reply: bytes | None, error: type[Exception]) -> None:
    async with connected([(b":GA#", reply)], clock) as mount:
        with pytest.raises(error):
            await mount.position()


async def test_slew_to(clock: object) -> None:
    script = [
        *here(b"+10*00'00", b"010*00'00"),
        *goto(b"+45*30'15", b"123*45'30"),
        *here(b"+30*00'00", b"080*00'00"),
        *here(b"+45*30'15", b"123*45'30"),
    ]
    async with connected(script, clock) as mount:
        await mount.slew_to(AltAz(123.758333, 45.504167))


async def test_slew_out_of_limits_sends_nothing(clock: object) -> None:
    async with connected([], clock) as mount:
        with pytest.raises(LimitViolation, match="elevation"):
            await mount.slew_to(AltAz(10.0, -1.0))


async def test_setter_refused_stops(clock: object) -> None:
    script = [*here(b"+10*00'00", b"010*00'00"), (b":Sa+45*00'00#", b"0"), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(LimitViolation, match="refused the altitude"):
            await mount.slew_to(AltAz(20.0, 45.0))


async def test_setter_garbage(clock: object) -> None:
    script = [*here(b"+10*00'00", b"010*00'00"), (b":Sa+45*00'00#", b"x"), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(ProtocolError, match="expected a digit"):
            await mount.slew_to(AltAz(20.0, 45.0))


async def test_setter_nak_is_retried(clock: object) -> None:
    script = [
        *here(b"+45*00'00", b"020*00'00"),
        (b":Sa+45*00'00#", b"\x15"),
        *goto(b"+45*00'00", b"020*00'00"),
        *here(b"+45*00'00", b"020*00'00"),
    ]
    async with connected(script, clock) as mount:
        await mount.slew_to(AltAz(20.0, 45.0))


async def test_setter_nak_forever(clock: object) -> None:
    naks = [(b":Sa+45*00'00#", b"\x15")] * 3
    script = [*here(b"+45*00'00", b"020*00'00"), *naks, STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(DeviceTimeout, match="NAK"):
            await mount.slew_to(AltAz(20.0, 45.0))


@pytest.mark.parametrize(
    ("code", "error", "text"),
    [
        (b"1", LimitViolation, "below the horizon"),
        (b"2", LimitViolation, "above the overhead"),
        (b"3", DeviceFault, "standby"),
        (b"6", LimitViolation, "outside the mount's limits"),
        (b"7", DeviceFault, "hardware fault"),
        (b"9", DeviceFault, "unspecified"),
        (b"X", ProtocolError, "expected a digit"),
    ],
)
async def test_goto_error_codes(
    clock: object, code: bytes, error: type[DeviceError], text: str
) -> None:
    script = [*here(b"+10*00'00", b"010*00'00"), *goto(b"+45*00'00", b"020*00'00", code), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(error, match=text):
            await mount.slew_to(AltAz(20.0, 45.0))


async def test_goto_while_slewing_stops_then_retries(clock: object) -> None:
    script = [
        *here(b"+10*00'00", b"010*00'00"),
        *goto(b"+45*00'00", b"020*00'00", b"5"),  # OnStep: goto already in progress
        STOP,
        (b":MA#", b"8"),  # still braking
        (b":MA#", b"0"),
        *here(b"+45*00'00", b"020*00'00"),
    ]
    async with connected(script, clock) as mount:
        await mount.slew_to(AltAz(20.0, 45.0))


async def test_goto_busy_beyond_braking_bound(clock: object) -> None:
    # Braking bound: speed/accel * margin + overhead = 1 * 1 + 0 = 1 clock s; polls every 0.25 s.
    opts = MountOptions(move_margin=1.0, move_overhead_s=0.0, poll_interval_s=0.25)
    limits = default_limits(0.0, 360.0, 0.0, 90.0, speed_deg_s=1.0, accel_deg_s2=1.0)
    script = [
        *here(b"+45*00'00", b"019*59'00"),
        *goto(b"+45*00'00", b"020*00'00", b"5"),
        STOP,
        *[(b":MA#", b"5")] * 4,
        STOP,
    ]
    async with connected(script, clock, options=opts, limits=limits) as mount:
        with pytest.raises(DeviceFault, match="in progress"):
            await mount.slew_to(AltAz(20.0, 45.0))


async def test_goto_when_parked_unparks_once(clock: object) -> None:
    script = [
        *here(b"+00*00'00", b"000*00'00"),
        *goto(b"+45*00'00", b"020*00'00", b"4"),
        (b":hR#", b"1"),
        (b":MA#", b"0"),
        *here(b"+45*00'00", b"020*00'00"),
    ]
    async with connected(script, clock) as mount:
        await mount.slew_to(AltAz(20.0, 45.0))
        assert mount.unparks == 1


async def test_stop_waits_until_still(clock: object) -> None:
    still = here(b"+45*00'00", b"020*00'00")
    async with connected([STOP, *here(b"+44*00'00", b"019*00'00"), *still, *still], clock) as m:
        await m.stop()


async def test_park(clock: object) -> None:
    script = [
        *here(b"+45*00'00", b"020*00'00"),
        (b":hP#", b"1"),
        (b":GU#", b"nNpI#"),
        (b":GU#", b"nNP#"),
        *here(b"+00*00'00", b"000*00'00"),
    ]
    async with connected(script, clock) as mount:
        await mount.park()
        status = await mount.status()
        assert status.state is MountState.PARKED


async def test_park_refused(clock: object) -> None:
    script = [*here(b"+45*00'00", b"020*00'00"), (b":hP#", b"0"), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(DeviceFault, match="park"):
            await mount.park()


async def test_park_failed_flag(clock: object) -> None:
    script = [*here(b"+45*00'00", b"020*00'00"), (b":hP#", b"1"), (b":GU#", b"nNF#"), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(DeviceFault, match="park failed"):
            await mount.park()


async def test_follow_skips_busy_ticks(clock: object) -> None:
    t = np.array([1000.0, 1000.5])
    traj = Trajectory(t, np.array([10.0, 12.0]), np.array([40.0, 41.0]))
    script = [
        *here(b"+40*00'00", b"010*00'00"),
        *goto(b"+40*00'00", b"010*00'00"),
        *goto(b"+40*30'00", b"011*00'00", b"5"),  # previous goto still running: skipped
        *goto(b"+41*00'00", b"012*00'00"),
        *here(b"+41*00'00", b"012*00'00"),
    ]
    async with connected(script, clock, follow_rate_hz=4.0) as mount:
        await mount.follow(traj)


async def test_follow_hard_goto_error_stops(clock: object) -> None:
    traj = Trajectory(np.array([1000.0, 1001.0]), np.array([10.0, 12.0]), np.array([40.0, 41.0]))
    script = [*here(b"+40*00'00", b"010*00'00"), *goto(b"+40*00'00", b"010*00'00", b"7"), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(DeviceFault, match="hardware fault"):
            await mount.follow(traj)


def test_from_url_serial_defaults_to_9600_baud(clock: object) -> None:
    mount = open_device("lx200+serial:///dev/ttyUSB0?el_min=15", clock)  # type: ignore[arg-type]
    assert isinstance(mount, LX200Mount)
    assert mount._source == "serial:///dev/ttyUSB0?baud=9600"
    assert mount.limits.el.min_deg == 15.0


def test_from_url_serial_keeps_line_settings(clock: object) -> None:
    url = "lx200+serial:///dev/ttyUSB0?baud=19200&rtscts=0&follow_rate_hz=5"
    mount = open_device(url, clock)  # type: ignore[arg-type]
    assert mount._source == "serial:///dev/ttyUSB0?baud=19200&rtscts=0"
    assert mount.options.follow_rate_hz == 5.0


def test_from_url_socket(clock: object) -> None:
    mount = open_device("lx200+socket://127.0.0.1:9999", clock)  # type: ignore[arg-type]
    assert mount._source == "socket://127.0.0.1:9999"


def test_from_url_unknown_parameter(clock: object) -> None:
    with pytest.raises(DeviceURLError, match=r"unknown parameter.*'bd'"):
        open_device("lx200+serial:///dev/ttyUSB0?bd=9600", clock)  # type: ignore[arg-type]
