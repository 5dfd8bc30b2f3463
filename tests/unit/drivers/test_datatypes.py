"""Value types: limits, move times, trajectories, event blocks, channel maps, error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.datatypes import (
    AltAz,
    AxisLimits,
    Basis,
    ChannelMap,
    EventBlock,
    MountLimits,
    Trajectory,
)
from drivers.errors import DeviceError, LimitViolation

LIMITS = MountLimits(AxisLimits(-270, 270, 5.0, 2.0), AxisLimits(0, 90, 3.0, 1.5))


def test_limit_check_names_axis_and_numbers() -> None:
    LIMITS.check(AltAz(-200.0, 45.0))
    with pytest.raises(LimitViolation) as info:
        LIMITS.check(AltAz(10.0, 95.0), device="rotctld://127.0.0.1:4533")
    text = str(info.value)
    assert "elevation 95.0000 deg" in text
    assert "[0, 90]" in text
    assert text.startswith("rotctld://127.0.0.1:4533: ")
    assert "nothing was commanded" in text


def test_trapezoidal_move_time() -> None:
    axis = AxisLimits(0, 360, 5.0, 2.0)
    # Long move: 2*v/a ramp time + cruise; ramp distance v^2/a = 12.5 deg.
    assert axis.move_time_s(100.0) == pytest.approx(2 * 5 / 2 + (100 - 12.5) / 5)
    # Short move: triangular profile, 2*sqrt(d/a).
    assert axis.move_time_s(2.0) == pytest.approx(2 * math.sqrt(1.0))
    assert axis.move_time_s(-2.0) == axis.move_time_s(2.0)
    assert LIMITS.move_time_s(AltAz(0, 10), AltAz(100, 10)) == axis.move_time_s(100.0)


def test_axis_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="empty"):
        AxisLimits(10, 10, 1, 1)
    with pytest.raises(ValueError, match="> 0"):
        AxisLimits(0, 10, 0, 1)


def test_separation() -> None:
    assert AltAz(0, 90).separation_deg(AltAz(123, 90)) == pytest.approx(0.0, abs=1e-9)
    assert AltAz(0, 0).separation_deg(AltAz(90, 0)) == pytest.approx(90.0)
    assert AltAz(10, 30).separation_deg(AltAz(10, 31)) == pytest.approx(1.0)
    assert AltAz(-90, 0).az_mod360() == 270.0


def test_trajectory_validation_and_interpolation() -> None:
    traj = Trajectory(
        np.array([0.0, 1.0, 2.0]), np.array([10.0, 20.0, 30.0]), np.array([5.0, 6, 7])
    )
    assert len(traj) == 3
    assert traj.at(0.5) == AltAz(15.0, 5.5)
    assert traj.at(-1.0) == AltAz(10.0, 5.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        Trajectory(np.array([0.0, 0.0]), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="same length"):
        Trajectory(np.array([0.0, 1.0]), np.zeros(3), np.zeros(2))


def test_event_block_enforces_integer_picoseconds() -> None:
    block = EventBlock(7, np.array([1, 2, 3], np.int64), np.array([1, 2, 1], np.uint8))
    assert len(block) == 3
    with pytest.raises(TypeError, match="int64 picoseconds"):
        EventBlock(0, np.array([1.0]), np.array([1], np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        EventBlock(0, np.array([1], np.int64), np.array([1], np.int32))
    with pytest.raises(ValueError, match="equal length"):
        EventBlock(0, np.array([1, 2], np.int64), np.array([1], np.uint8))
    assert len(EventBlock.empty(3)) == 0


def test_channel_map() -> None:
    cmap = ChannelMap(h=1, v=2, d=3, a=4)
    assert [cmap.basis_of(c) for c in (1, 2, 3, 4)] == [Basis.HV, Basis.HV, Basis.DA, Basis.DA]
    assert [cmap.bit_of(c) for c in (1, 2, 3, 4)] == [0, 1, 0, 1]
    with pytest.raises(KeyError):
        cmap.basis_of(8)
    with pytest.raises(ValueError, match="distinct"):
        ChannelMap(1, 1, 2, 3)


def test_device_error_message_has_what_where_and_hint() -> None:
    err = DeviceError("no reply to 'p'", device="rotctld://h:1", hint="check the cable")
    assert str(err) == "rotctld://h:1: no reply to 'p' (check the cable)"
    assert str(DeviceError("plain")) == "plain"
