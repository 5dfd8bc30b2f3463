"""Opt-in: the TimeTagger conformance suite against a real time tagger.

    pytest -m hardware --device-url 'idq+zmq://169.254.99.101:5555?dlt=6060&dlt_host=127.0.0.1' \
        tests/integration/drivers/timetagger/test_tagger_hardware.py

Detectors (or a pulse generator) must be connected to the inputs and give counts: the suite
expects events within 20 s. The IDQ driver streams with the DataLinkTarget's ``--channel all``
block format (docs/devices/idq-emulator.md); a DataLinkTarget that only offers IDQ's
single-channel streams fails the suite with a DeviceFault naming the refused request.
"""

from __future__ import annotations

import pytest

from drivers.clock import SystemClock
from drivers.interfaces import TimeTagger
from drivers.registry import open_device, parse_device_url
from drivers.testing.conformance import timetagger_conformance


@pytest.mark.hardware
async def test_timetagger_conformance_on_hardware(device_url: str) -> None:
    if parse_device_url(device_url).kind != "timetagger":
        pytest.skip(f"--device-url {device_url} is not a time tagger")
    clock = SystemClock()
    tagger = open_device(device_url, clock)
    assert isinstance(tagger, TimeTagger)
    inputs = getattr(tagger, "inputs", (1, 2, 3, 4))
    await timetagger_conformance(tagger, clock=clock, channels=tuple(inputs)[:4])
