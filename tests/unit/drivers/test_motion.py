"""The move skeleton: check before anything, bound from the motion, stop in finally.

The "device" here is a log of the calls the skeleton makes; its waits are asyncio events, so
every outcome (completed, failed, refused, cancelled, timed out) is forced, not timed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from drivers.clock import WarpClock
from drivers.errors import DeviceFault, DeviceTimeout, LimitViolation
from drivers.motion import Motion, guarded_move, motion_timeout_s

STEP_S = 5.0

T = TypeVar("T")


class Stage:
    """Records what the skeleton asked of it."""

    def __init__(self, *, stop_fails: bool = False) -> None:
        self.calls: list[str] = []
        self.stop_fails = stop_fails
        self.moving = asyncio.Event()

    async def bound(self) -> float:
        self.calls.append("read position")
        return 7.5

    async def stop(self) -> None:
        self.calls.append("stop")
        if self.stop_fails:
            raise DeviceFault("stop refused", device="stage://1")


def clock() -> WarpClock:
    return WarpClock(time.time(), rate=1.0)


async def run(
    stage: Stage,
    move: Callable[[Motion], Awaitable[T]],
    *,
    timeout_s: float | None = None,
    check: Callable[[], object] | None = None,
    grace_wall_s: float | None = 0.0,
) -> T:
    return await asyncio.wait_for(
        guarded_move(
            "move",
            move,
            timeout_s=stage.bound if timeout_s is None else timeout_s,
            stop=stage.stop,
            clock=clock(),
            device="stage://1",
            check=check,
            grace_wall_s=grace_wall_s,
        ),
        STEP_S,
    )


def test_motion_timeout_grows_with_distance() -> None:
    assert motion_timeout_s(90.0, 45.0, margin=2.0, overhead_s=1.0) == pytest.approx(5.0)
    assert motion_timeout_s(-90.0, 45.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="speed"):
        motion_timeout_s(1.0, 0.0)


async def test_check_runs_before_anything_is_sent() -> None:
    stage = Stage()

    async def move(motion: Motion) -> None:
        stage.calls.append("command")

    def check() -> None:
        raise LimitViolation("elevation 95 deg above 90", device="stage://1")

    with pytest.raises(LimitViolation):
        await run(stage, move, check=check)
    assert stage.calls == []  # no position read, no command, no stop


async def test_completed_move_is_not_stopped_and_sees_its_bound() -> None:
    stage = Stage()

    async def move(motion: Motion) -> str:
        stage.calls.append(f"command within {motion.bound_s}")
        motion.started()
        return "arrived"

    assert await run(stage, move) == "arrived"
    assert stage.calls == ["read position", "command within 7.5"]


async def test_failed_move_is_stopped_and_the_error_propagates() -> None:
    stage = Stage()

    async def move(motion: Motion) -> None:
        motion.started()
        stage.calls.append("command")
        raise DeviceFault("stall", device="stage://1")

    with pytest.raises(DeviceFault, match="stall"):
        await run(stage, move)
    assert stage.calls == ["read position", "command", "stop"]


async def test_refused_command_is_not_followed_by_a_stop() -> None:
    stage = Stage()

    async def move(motion: Motion) -> None:
        motion.started()
        motion.at_rest()  # the device refused: nothing moves
        raise LimitViolation("refused", device="stage://1")

    with pytest.raises(LimitViolation):
        await run(stage, move)
    assert stage.calls == ["read position"]


async def test_cancelled_move_is_stopped_before_the_cancellation_propagates() -> None:
    stage = Stage()

    async def move(motion: Motion) -> None:
        motion.started()
        stage.moving.set()
        await asyncio.Event().wait()  # a motion that never ends

    task = asyncio.ensure_future(run(stage, move, timeout_s=60.0))
    await asyncio.wait_for(stage.moving.wait(), STEP_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stage.calls == ["stop"]


async def test_backstop_times_out_and_stops() -> None:
    stage = Stage()

    async def move(motion: Motion) -> None:
        motion.started()
        await asyncio.Event().wait()

    with pytest.raises(DeviceTimeout, match=r"move did not complete within 0\.1 s") as info:
        await run(stage, move, timeout_s=0.05, grace_wall_s=0.0)
    assert info.value.device == "stage://1"
    assert stage.calls == ["stop"]


async def test_a_failing_stop_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    stage = Stage(stop_fails=True)

    async def move(motion: Motion) -> None:
        motion.started()
        raise DeviceTimeout("no reply", device="stage://1")

    with (
        caplog.at_level(logging.WARNING, logger="drivers.motion"),
        pytest.raises(DeviceTimeout, match="no reply"),
    ):
        await run(stage, move)
    assert "stop refused" in caplog.text
    assert stage.calls == ["read position", "stop"]


async def test_without_backstop_the_move_bounds_itself() -> None:
    stage = Stage()

    async def move(motion: Motion) -> float:
        motion.started()
        await asyncio.sleep(0.01)  # longer than the (tiny) bound: no backstop fires
        return motion.bound_s

    assert await run(stage, move, timeout_s=0.001, grace_wall_s=None) == 0.001
    assert stage.calls == []
