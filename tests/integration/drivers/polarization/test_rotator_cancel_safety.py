"""A cancelled rotator call never leaves a reply in the pipe for the next command (issue 14).

Both rotators run against their emulators through the real transports: the ELL14 on a pty via
the serial transport, the SMC100 on a pty via pyvisa-py (ASRL). A call is cancelled at several
moments of its exchange (before the request is written, while the reply is on its way, after
it arrived); afterwards the next ``move_to(x)`` must wait for the motion and report ``x``, and
20 following commands must each get their own reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from drivers.clock import WarpClock
from drivers.polarization.elliptec import ElliptecRotator
from drivers.polarization.smc100 import SMC100Rotator
from drivers.registry import open_device
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.faults import FaultInjector
from sim_hardware.servers.elliptec import ElliptecBus, ElliptecDevice
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.smc100 import SMC100Controller, SMC100Line, State

STEP_S = 5.0  #: wall bound on every single driver call in these tests

#: moments to cancel at: a number of event-loop turns, or a wall delay in seconds (float)
MOMENTS: list[int | float] = [0, 1, 2, 3, 5, 8, 0.001, 0.003, 0.01]


@dataclass
class Rig:
    clock: WarpClock
    model: RotatorModel
    url: str
    controller: SMC100Controller | None = None


@contextlib.asynccontextmanager
async def serve_ell14() -> AsyncIterator[Rig]:
    clock = WarpClock(time.time(), rate=5.0)
    faults = FaultInjector(clock, "ell14")
    model = RotatorModel(clock, seed=1, faults=faults, name="hwp")
    bus = ElliptecBus(clock, {0: ElliptecDevice(model)}, faults=faults)
    async with PtyServer(bus, name="ell14", clock=clock, faults=faults) as server:
        yield Rig(clock, model, f"elliptec+serial://{server.path}?address=0")


@contextlib.asynccontextmanager
async def serve_smc100(rate: float = 10.0, speed_deg_s: float = 200.0) -> AsyncIterator[Rig]:
    clock = WarpClock(time.time(), rate=rate)
    faults = FaultInjector(clock, "smc100")
    model = RotatorModel(
        clock, seed=3, max_speed_deg_s=speed_deg_s, faults=faults, name="smc-stage"
    )
    ctl = SMC100Controller(model, min_deg=-1.0, max_deg=361.0)
    handler = SMC100Line(clock, {1: ctl}, faults=faults)
    async with PtyServer(handler, name="smc100", clock=clock, faults=faults) as server:
        yield Rig(clock, model, f"smc100+visa://ASRL{server.path}::INSTR", ctl)


async def step(aw: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(aw, STEP_S)


async def cancel_at(make: Callable[[], Awaitable[Any]], moment: int | float) -> None:
    """Start ``make()`` as a task, cancel it at ``moment`` and wait for it to end."""
    task = asyncio.ensure_future(make())
    if isinstance(moment, float):
        await asyncio.sleep(moment)
    else:
        for _ in range(moment):
            await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await step(task)  # it may have finished before the cancel landed


def folded(deg: float) -> float:
    return deg % 360.0


async def check_in_step(rotator: Any, rig: Rig) -> None:
    """The next move waits for the motion; 20 more commands each get their own reply."""
    await step(rotator.move_to(180.0))
    assert not rig.model.is_moving()  # the move returned only once the stage had arrived
    assert folded(rig.model.position_deg()) == pytest.approx(180.0, abs=0.01)
    assert await step(rotator.angle()) == pytest.approx(180.0, abs=0.01)
    for i in range(10):  # 20 commands: a move and a read-back each
        target = 180.0 + 17.0 * (i + 1)
        await step(rotator.move_to(target))
        assert folded(rig.model.position_deg()) == pytest.approx(folded(target), abs=0.01)
        assert await step(rotator.angle()) == pytest.approx(folded(target), abs=0.01)


@pytest.mark.parametrize("moment", MOMENTS)
async def test_elliptec_cancelled_angle_leaves_no_reply_behind(moment: int | float) -> None:
    async with serve_ell14() as rig:
        rotator = open_device(rig.url, rig.clock)
        assert isinstance(rotator, ElliptecRotator)
        await step(rotator.connect())
        try:
            await step(rotator.home())
            await step(rotator.move_to(30.0))
            await cancel_at(rotator.angle, moment)
            await check_in_step(rotator, rig)
        finally:
            await rotator.close()


@pytest.mark.parametrize("moment", [0, 1, 3, 0.002, 0.02])
async def test_elliptec_cancelled_move_stops_and_leaves_no_reply_behind(
    moment: int | float,
) -> None:
    async with serve_ell14() as rig:
        rotator = open_device(rig.url, rig.clock)
        assert isinstance(rotator, ElliptecRotator)
        await step(rotator.connect())
        try:
            await step(rotator.home())
            await cancel_at(lambda: rotator.move_to(300.0), moment)
            # the cancelled move was stopped (or never sent): the driver reads where it is
            assert await step(rotator.angle()) == pytest.approx(
                folded(rig.model.position_deg()), abs=0.01
            )
            await check_in_step(rotator, rig)
        finally:
            await rotator.close()


@pytest.mark.parametrize("moment", MOMENTS)
async def test_smc100_cancelled_angle_leaves_no_reply_behind(moment: int | float) -> None:
    async with serve_smc100() as rig:
        stage = open_device(rig.url, rig.clock)
        assert isinstance(stage, SMC100Rotator)
        await step(stage.connect())
        try:
            await step(stage.home())
            await cancel_at(stage.angle, moment)
            await check_in_step(stage, rig)  # no spurious ProtocolError on any command
        finally:
            await stage.close()


@pytest.mark.parametrize("moment", [0, 2, 5, 0.005, 0.03])
async def test_smc100_cancelled_move_leaves_no_reply_behind(moment: int | float) -> None:
    async with serve_smc100() as rig:
        stage = open_device(rig.url, rig.clock)
        assert isinstance(stage, SMC100Rotator)
        await step(stage.connect())
        try:
            await step(stage.home())
            await cancel_at(lambda: stage.move_to(300.0), moment)
            await check_in_step(stage, rig)
        finally:
            await stage.close()


#: a finer sweep of cancel moments, all on one line: whichever moment the transport's timing
#: makes critical, one of them lands between the request going out and its reply being read
SWEEP: list[int | float] = [*range(12), 0.0005, 0.001, 0.002, 0.004]


async def sweep_cancelled_angles(rotator: Any, rig: Rig) -> None:
    for i, moment in enumerate(SWEEP):
        await cancel_at(rotator.angle, moment)
        target = 40.0 + 7.0 * i
        await step(rotator.move_to(target))
        assert not rig.model.is_moving(), f"after a cancel at {moment!r}"
        assert folded(rig.model.position_deg()) == pytest.approx(target, abs=0.01), moment
        assert await step(rotator.angle()) == pytest.approx(target, abs=0.01), moment
    await check_in_step(rotator, rig)


async def test_elliptec_sweep_of_cancelled_angles() -> None:
    async with serve_ell14() as rig:
        rotator = open_device(rig.url, rig.clock)
        await step(rotator.connect())
        try:
            await step(rotator.home())
            await sweep_cancelled_angles(rotator, rig)
        finally:
            await rotator.close()


async def test_smc100_sweep_of_cancelled_angles() -> None:
    async with serve_smc100() as rig:
        stage = open_device(rig.url, rig.clock)
        await step(stage.connect())
        try:
            await step(stage.home())
            await sweep_cancelled_angles(stage, rig)
        finally:
            await stage.close()


async def test_smc100_cancelled_move_is_at_rest_before_the_cancel_propagates() -> None:
    # The controller reports MOVING for a moment after ST (the emulator: until its motion
    # watcher sees the stop, 0.01 clock s = 20 ms wall at rate 0.5) and refuses PA meanwhile
    # (error M): the driver must not hand the line back until the stage is at rest.
    async with serve_smc100(rate=0.5, speed_deg_s=1000.0) as rig:
        stage = open_device(rig.url, rig.clock)
        assert isinstance(stage, SMC100Rotator)
        await step(stage.connect())
        try:
            await step(stage.home())
            task = asyncio.ensure_future(stage.move_to(300.0))
            for _ in range(500):  # bounded: wait until the stage is under way
                if rig.model.is_moving() and rig.model.position_deg() > 20.0:
                    break
                await asyncio.sleep(0.002)
            assert rig.model.is_moving()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await step(task)
            assert rig.controller is not None
            assert rig.controller.state is not State.MOVING  # at rest when the cancel ended
            at = folded(rig.model.position_deg())
            await step(stage.move_to(at + 10.0))  # not refused with error M
            assert await step(stage.angle()) == pytest.approx(folded(at + 10.0), abs=0.01)
        finally:
            await stage.close()
