"""Byte-exact rotctld exchanges (protocols.md §1c, real ``rotctld -m 1`` replies)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import numpy as np
import pytest

from drivers.datatypes import AltAz, MountCapability, MountState, Trajectory
from drivers.errors import (
    ConfigError,
    DeviceFault,
    DeviceTimeout,
    DeviceURLError,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.mount.options import default_limits
from drivers.mount.rotctld import RotctldMount, parse_rprt
from drivers.registry import open_device
from drivers.testing.protocol import expected_protocol

# Verbatim reply of Hamlib 4.5.4 `rotctld -m 1` (dummy rotator) to \dump_state.
DUMP_STATE = (
    b"\\dump_state\n",
    b"1\n1\nmin_az=-180.000000\nmax_az=450.000000\nmin_el=0.000000\nmax_el=90.000000\n"
    b"south_zero=0\nrot_type=AzEl\ndone\n",
)
INFO = (b"_\n", b"Dummy rotator\n")
HANDSHAKE = [DUMP_STATE, INFO]

Pair = tuple[bytes | None, bytes | None]


def pos(az: str, el: str) -> Pair:
    return (b"p\n", f"{az}\n{el}\n".encode())


def set_pos(az: float, el: float, reply: bytes = b"RPRT 0\n") -> Pair:
    return (f"P {az:.6f} {el:.6f}\n".encode(), reply)


STOP = (b"S\n", b"RPRT 0\n")


@asynccontextmanager
async def connected(
    script: Sequence[Pair], clock: object, **kwargs: object
) -> AsyncIterator[RotctldMount]:
    async with expected_protocol([*HANDSHAKE, *script]) as transport:
        mount = RotctldMount(transport, clock, **kwargs)  # type: ignore[arg-type]
        await mount.connect()
        yield mount


async def test_connect_reads_limits_and_info(clock: object) -> None:
    async with connected([], clock) as mount:
        assert mount.limits.az.min_deg == -180.0
        assert mount.limits.az.max_deg == 450.0
        assert mount.limits.el.min_deg == 0.0
        assert mount.limits.el.max_deg == 90.0
        assert mount.info == "Dummy rotator"
        assert MountCapability.READ_LIMITS in mount.capabilities
        assert mount.is_connected


async def test_soft_limits_are_narrowed_to_device_limits(clock: object) -> None:
    soft = default_limits(-270.0, 270.0, 10.0, 95.0, speed_deg_s=3.0)
    async with connected([], clock, limits=soft) as mount:
        lim = mount.limits
        assert (lim.az.min_deg, lim.az.max_deg) == (-180.0, 270.0)
        assert (lim.el.min_deg, lim.el.max_deg) == (10.0, 90.0)
        assert lim.az.max_speed_deg_s == 3.0


async def test_soft_limits_disjoint_from_device_is_config_error(clock: object) -> None:
    soft = default_limits(500.0, 600.0, 0.0, 90.0)
    async with expected_protocol([DUMP_STATE]) as transport:
        mount = RotctldMount(transport, clock, limits=soft)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="does not overlap"):
            await mount.connect()


async def test_dump_state_protocol_0(clock: object) -> None:
    script = [(b"\\dump_state\n", b"0\n2\n-90.000000\n90.000000\n5.000000\n85.000000\n"), INFO]
    async with expected_protocol(script) as transport:
        mount = RotctldMount(transport, clock)  # type: ignore[arg-type]
        await mount.connect()
        assert (mount.limits.az.min_deg, mount.limits.az.max_deg) == (-90.0, 90.0)
        assert (mount.limits.el.min_deg, mount.limits.el.max_deg) == (5.0, 85.0)


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (b"7\n1\ndone\n", ProtocolError, "protocol version"),
        (b"1\n1\nmin_az=-180\nmax_az=180\ndone\n", ProtocolError, "lacks"),
        (b"1\n1\nmin_az=abc\n", ProtocolError, "expected a number"),
        (b"RPRT -4\n", DeviceFault, "ENIMPL"),
        (b"1\n1\nmin_az=-180\n", DeviceTimeout, None),  # partial reply, then silence
    ],
)
async def test_dump_state_errors(
    clock: object, reply: bytes, error: type[Exception], text: str | None
) -> None:
    async with expected_protocol([(b"\\dump_state\n", reply)]) as transport:
        mount = RotctldMount(transport, clock)  # type: ignore[arg-type]
        with pytest.raises(error, match=text):
            await mount.connect()
        assert not mount.is_connected


async def test_position(clock: object) -> None:
    async with connected([pos("135.00", "10.50")], clock) as mount:
        assert await mount.position() == AltAz(135.0, 10.5)


async def test_position_accepts_old_hamlib_float_format(clock: object) -> None:
    async with connected([pos("135.000000", "-0.250000")], clock) as mount:
        assert await mount.position() == AltAz(135.0, -0.25)


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (b"hello\nworld\n", ProtocolError, "expected a number for azimuth"),
        (b"10.00\nnan\n", ProtocolError, "not finite"),
        (b"10.00\n", DeviceTimeout, None),  # partial: elevation line never comes
        (None, DeviceTimeout, None),  # silence
        (b"RPRT -5\n", DeviceTimeout, "ETIMEOUT"),
        (b"RPRT -6\n", DeviceFault, "EIO"),
        (b"RPRT -9\n", DeviceFault, "ERJCTED"),
        (b"RPRT -8\n", ProtocolError, "EPROTO"),
        (b"RPRT -42\n", DeviceFault, "Hamlib error 42"),
        (b"RPRT 0\n", ProtocolError, "without a value"),
        (b"\xff\xfe\n", ProtocolError, "non-ASCII"),
    ],
)
async def test_position_errors(
    clock: object, reply: bytes | None, error: type[Exception], text: str | None
) -> None:
    async with connected([(b"p\n", reply)], clock) as mount:
        with pytest.raises(error, match=text):
            await mount.position()


async def test_not_connected(clock: object) -> None:
    async with expected_protocol([]) as transport:
        mount = RotctldMount(transport, clock)  # type: ignore[arg-type]
        with pytest.raises(NotConnected, match="connect"):
            await mount.position()


async def test_slew_to(clock: object) -> None:
    script = [
        pos("0.00", "0.00"),
        set_pos(100.0, 45.0),
        pos("50.00", "20.00"),
        pos("100.00", "45.00"),
    ]
    async with connected(script, clock) as mount:
        await mount.slew_to(AltAz(100.0, 45.0))
        assert mount._state is MountState.IDLE


async def test_slew_out_of_limits_sends_nothing(clock: object) -> None:
    async with connected([], clock) as mount:
        with pytest.raises(LimitViolation, match=r"elevation 95\.0000 deg"):
            await mount.slew_to(AltAz(10.0, 95.0))
        with pytest.raises(LimitViolation, match="azimuth"):
            await mount.slew_to(AltAz(-200.0, 10.0))


async def test_slew_refused_by_device_stops_axes(clock: object) -> None:
    script = [pos("0.00", "0.00"), set_pos(100.0, 45.0, b"RPRT -1\n"), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(LimitViolation, match="RPRT -1"):
            await mount.slew_to(AltAz(100.0, 45.0))


async def test_slew_timeout_while_polling_stops_axes(clock: object) -> None:
    script = [pos("0.00", "0.00"), set_pos(100.0, 45.0), (b"p\n", None), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(DeviceTimeout):
            await mount.slew_to(AltAz(100.0, 45.0))
        assert mount._state is MountState.IDLE


async def test_slew_not_reached_in_bound(clock: object) -> None:
    # Bound 0.25 clock s, poll interval 0.1 s: polls at t=0, 0.1, 0.2, 0.3 (past the bound).
    stuck = [pos("10.00", "10.00")] * 4
    script = [pos("0.00", "0.00"), set_pos(100.0, 45.0), *stuck, STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(DeviceTimeout, match="not reached within"):
            await mount.slew_to(AltAz(100.0, 45.0), timeout=0.25)


async def test_move_timeout_from_distance_and_velocity(clock: object) -> None:
    soft = default_limits(-180.0, 450.0, 0.0, 90.0, speed_deg_s=2.0, accel_deg_s2=2.0)
    mount = RotctldMount("tcp://127.0.0.1:1", clock, limits=soft)  # type: ignore[arg-type]
    # 100 deg at 2 deg/s with 2 deg/s^2: 2*v/a + (d - v^2/a)/v = 2 + 49 = 51 s; x1.5 + 3.
    assert mount.move_timeout_s(AltAz(0.0, 0.0), AltAz(100.0, 10.0)) == pytest.approx(79.5)
    assert mount.move_timeout_s(AltAz(0.0, 0.0), AltAz(0.0, 0.0)) == pytest.approx(3.0)


async def test_stop_waits_until_still(clock: object) -> None:
    script = [STOP, pos("10.00", "5.00"), pos("10.50", "5.20"), pos("10.50", "5.20")]
    async with connected(script, clock) as mount:
        await mount.stop()
        assert clock.sleeps == [0.1, 0.1]  # type: ignore[attr-defined]


async def test_stop_refused(clock: object) -> None:
    async with connected([(b"S\n", b"RPRT -4\n")], clock) as mount:
        with pytest.raises(DeviceFault, match="not implemented"):
            await mount.stop()


async def test_set_reply_garbage(clock: object) -> None:
    async with connected([(b"S\n", b"OK\n")], clock) as mount:
        with pytest.raises(ProtocolError, match="expected 'RPRT n'"):
            await mount.stop()


async def test_park_at_known_position(clock: object) -> None:
    script = [
        pos("100.00", "45.00"),
        (b"K\n", b"RPRT 0\n"),
        pos("50.00", "20.00"),
        pos("0.00", "0.00"),
    ]
    async with connected(script, clock, park=AltAz(0.0, 0.0)) as mount:
        await mount.park()
        assert mount._state is MountState.PARKED


async def test_park_unknown_position_waits_until_still(clock: object) -> None:
    script = [
        pos("100.00", "45.00"),
        (b"K\n", b"RPRT 0\n"),
        pos("50.00", "20.00"),
        pos("0.00", "0.00"),
        pos("0.00", "0.00"),
        pos("0.00", "0.00"),  # status() below
    ]
    async with connected(script, clock) as mount:
        await mount.park()
        status = await mount.status()
        assert status.state is MountState.PARKED
        assert status.position == AltAz(0.0, 0.0)


async def test_follow_streams_interpolated_targets(clock: object) -> None:
    # StepClock starts at t=1000; 4 Hz ticks at 1000, 1000.25, 1000.5 (binary-exact times).
    t = np.array([1000.0, 1000.5])
    traj = Trajectory(t, np.array([10.0, 12.0]), np.array([40.0, 41.0]))
    script = [
        pos("10.00", "40.00"),
        set_pos(10.0, 40.0),
        set_pos(11.0, 40.5),
        set_pos(12.0, 41.0),
        pos("12.00", "41.00"),
    ]
    async with connected(script, clock, follow_rate_hz=4.0) as mount:
        await mount.follow(traj)


async def test_follow_out_of_limits_sends_nothing(clock: object) -> None:
    t = np.array([1000.0, 1001.0, 1002.0])
    traj = Trajectory(t, np.array([10.0, 11.0, 12.0]), np.array([40.0, 91.0, 92.0]))
    async with connected([], clock) as mount:
        with pytest.raises(LimitViolation, match=r"sample 1 .* 2 samples"):
            await mount.follow(traj)


async def test_follow_error_stops_axes(clock: object) -> None:
    traj = Trajectory(np.array([1000.0, 1001.0]), np.array([10.0, 12.0]), np.array([40.0, 40.0]))
    script = [pos("10.00", "40.00"), set_pos(10.0, 40.0, b"RPRT -9\n"), STOP]
    async with connected(script, clock) as mount:
        with pytest.raises(DeviceFault, match="rejected"):
            await mount.follow(traj)


async def test_close_is_idempotent(clock: object) -> None:
    async with connected([], clock) as mount:
        await mount.close()
        await mount.close()
        assert not mount.is_connected
        with pytest.raises(NotConnected):
            await mount.connect()  # an injected transport cannot be reopened


def test_parse_rprt() -> None:
    assert parse_rprt("RPRT 0") == 0
    assert parse_rprt("RPRT -11") == 11
    assert parse_rprt("135.00") is None
    assert parse_rprt("RPRT x") is None


def test_from_url_parameters(clock: object) -> None:
    url = "rotctld://127.0.0.1:4533?speed_deg_s=3&accel_deg_s2=1.5&el_min=10&follow_rate_hz=5"
    mount = open_device(url, clock)  # type: ignore[arg-type]
    assert isinstance(mount, RotctldMount)
    assert mount.url == url
    assert mount.limits.el.min_deg == 10.0
    assert mount.limits.az.max_speed_deg_s == 3.0
    assert mount.limits.el.max_accel_deg_s2 == 1.5
    assert mount.options.follow_rate_hz == 5.0


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("el_mn=10", "unknown parameter"),
        ("speed_deg_s=fast", "not a number"),
        ("el_min=80&el_max=10", "axis range is empty"),
        ("follow_rate_hz=0", "follow_rate_hz must be"),
        ("park_az=10", "park_az and park_el"),
        ("speed_deg_s=inf", "must be finite"),
    ],
)
def test_from_url_rejects_bad_parameters(clock: object, query: str, text: str) -> None:
    with pytest.raises(DeviceURLError, match=text):
        open_device(f"rotctld://127.0.0.1:4533?{query}", clock)  # type: ignore[arg-type]
