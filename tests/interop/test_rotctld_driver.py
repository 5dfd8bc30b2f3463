"""Our RotctldMount against the real Hamlib ``rotctld -m 1`` (dummy rotator) on loopback.

The dummy rotator (Hamlib ``rot_dummy.c``) reports -180..450 deg azimuth and 0..90 deg
elevation and moves both axes at 6 deg/s with no acceleration, in real time.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest

from drivers.clock import SystemClock
from drivers.datatypes import AltAz, MountState, Trajectory
from drivers.errors import LimitViolation
from drivers.mount.rotctld import RotctldMount
from drivers.registry import open_device
from drivers.testing.conformance import mount_conformance
from tests.conftest import free_tcp_port, stop_process

ROTCTLD = shutil.which("rotctld")
pytestmark = pytest.mark.skipif(ROTCTLD is None, reason="Hamlib rotctld is not installed")
#: the dummy's speed; it has no acceleration ramp, so tell the driver a steep one
DUMMY = "speed_deg_s=6&accel_deg_s2=100"


@pytest.fixture
def rotctld_port() -> Iterator[int]:
    assert ROTCTLD is not None
    port = free_tcp_port()
    proc = subprocess.Popen(
        [ROTCTLD, "-m", "1", "-T", "127.0.0.1", "-t", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10.0
        while True:
            assert proc.poll() is None, f"rotctld exited with {proc.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "rotctld did not listen within 10 s"
                time.sleep(0.05)
        yield port
    finally:
        stop_process(proc)


async def test_driver_against_real_rotctld(rotctld_port: int) -> None:
    clock = SystemClock()
    mount = open_device(f"rotctld://127.0.0.1:{rotctld_port}?{DUMMY}", clock)
    assert isinstance(mount, RotctldMount)
    await mount.connect()
    try:
        assert mount.info == "Dummy rotator"
        lim = mount.limits
        assert (lim.az.min_deg, lim.az.max_deg, lim.el.min_deg, lim.el.max_deg) == (
            -180.0,
            450.0,
            0.0,
            90.0,
        )
        assert await mount.position() == AltAz(0.0, 0.0)

        await mount.slew_to(AltAz(3.0, 2.0))
        assert (await mount.position()).separation_deg(AltAz(3.0, 2.0)) < 0.03

        with pytest.raises(LimitViolation):
            await mount.slew_to(AltAz(3.0, 95.0))

        t0 = clock.now() + 0.2
        t = t0 + np.linspace(0.0, 1.0, 11)
        traj = Trajectory(t, np.linspace(3.0, 4.0, 11), np.full(11, 2.0))
        await mount.follow(traj)
        end = await mount.position()
        assert abs(end.az_deg - 4.0) <= 0.02
        assert abs(end.el_deg - 2.0) <= 0.02

        await mount.stop()
        await mount.park()  # the dummy parks at (0, 0)
        status = await mount.status()
        assert status.state is MountState.PARKED
        assert status.position == AltAz(0.0, 0.0)
    finally:
        await mount.close()
        await mount.close()


@pytest.mark.slow
async def test_conformance_against_real_rotctld(rotctld_port: int) -> None:
    # Soft azimuth limits keep the suite's slews short at the dummy's 6 deg/s (~25 s in all).
    clock = SystemClock()
    url = f"rotctld://127.0.0.1:{rotctld_port}?{DUMMY}&az_min=-70&az_max=90&park_az=0&park_el=0"
    await mount_conformance(open_device(url, clock), clock=clock)
