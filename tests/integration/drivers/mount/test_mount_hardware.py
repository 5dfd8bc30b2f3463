"""Opt-in: the Mount conformance suite against a real mount.

    pytest -m hardware --device-url 'rotctld://192.0.2.10:4533?speed_deg_s=3' \
        tests/integration/drivers/mount/test_mount_hardware.py

The suite moves the mount inside its limits and parks it: clear the dome first.
"""

from __future__ import annotations

import pytest

from drivers.clock import SystemClock
from drivers.interfaces import Mount
from drivers.registry import open_device, parse_device_url
from drivers.testing.conformance import mount_conformance


@pytest.mark.hardware
async def test_mount_conformance_on_hardware(device_url: str) -> None:
    if parse_device_url(device_url).kind != "mount":
        pytest.skip(f"--device-url {device_url} is not a mount")
    clock = SystemClock()
    mount = open_device(device_url, clock)
    assert isinstance(mount, Mount)
    await mount_conformance(mount, clock=clock)
