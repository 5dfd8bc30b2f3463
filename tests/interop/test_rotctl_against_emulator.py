"""Hamlib's own client, ``rotctl -m 2`` (NET rotctl), reads and sets our rotctld emulator.

rotctl opens the connection with ``\\dump_state`` (so our limits reach its own range checks),
then runs the commands given on its command line. Skipped only if the binary is absent; CI
installs it (Debian package libhamlib-utils).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator

import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from sim_hardware.devices.mount import MountModel
from sim_hardware.servers.rotctld import RotctldServer, serve_rotctld

ROTCTL = shutil.which("rotctl")
pytestmark = pytest.mark.skipif(ROTCTL is None, reason="Hamlib rotctl is not installed")

LIMITS = MountLimits(
    az=AxisLimits(-180.0, 450.0, max_speed_deg_s=5.0, max_accel_deg_s2=5.0),
    el=AxisLimits(0.0, 90.0, max_speed_deg_s=5.0, max_accel_deg_s2=5.0),
)


@pytest.fixture
def model() -> MountModel:
    clock = WarpClock(epoch=1_700_000_000.0, anchor=time.time(), rate=50.0)
    return MountModel(clock, LIMITS, park=AltAz(0.0, 0.0), settle_s=0.2, name="interop")


@pytest.fixture
async def server(model: MountModel) -> AsyncIterator[RotctldServer]:
    srv = await serve_rotctld(model)
    try:
        yield srv
    finally:
        await srv.close()


async def rotctl(port: int, *args: str) -> tuple[int, str, str]:
    """Run rotctl against the emulator; stopped by PID if it overruns."""
    assert ROTCTL is not None
    proc = await asyncio.create_subprocess_exec(
        ROTCTL,
        "-m",
        "2",
        "-r",
        f"127.0.0.1:{port}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20.0)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), 5.0)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_rotctl_reads_position(server: RotctldServer) -> None:
    rc, out, err = await rotctl(server.port, "p")
    assert rc == 0, err
    assert [float(x) for x in out.split()] == [0.0, 0.0]


async def test_rotctl_sets_position_and_reads_it_back(
    server: RotctldServer, model: MountModel
) -> None:
    rc, _, err = await rotctl(server.port, "P", "120", "45")
    assert rc == 0, err
    assert model.target == AltAz(120.0, 45.0)
    for _ in range(200):  # bounded: 200 x 0.02 s wall
        if not model.is_moving():
            break
        await asyncio.sleep(0.02)
    rc, out, err = await rotctl(server.port, "p")
    assert rc == 0, err
    assert [float(x) for x in out.split()] == [120.0, 45.0]


async def test_rotctl_applies_our_limits_from_dump_state(
    server: RotctldServer, model: MountModel
) -> None:
    rc, out, err = await rotctl(server.port, "P", "500", "45")
    assert rc != 0
    assert "max=450.00" in out + err  # rotctl learnt max_az from our \dump_state
    assert model.target == AltAz(0.0, 0.0)


async def test_rotctl_stop_park_and_info(server: RotctldServer, model: MountModel) -> None:
    rc, out, err = await rotctl(server.port, "_", "S", "K")
    assert rc == 0, err
    assert "qgs emulated mount interop" in out
