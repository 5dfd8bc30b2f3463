"""Opt-in: the Rotator (and PolarizationAnalyzer) conformance suites against a real stage.

    pytest -m hardware --device-url 'elliptec+serial:///dev/ttyUSB1?address=0' \
        tests/integration/drivers/polarization/test_rotator_hardware.py
    pytest -m hardware --device-url 'smc100+visa://ASRL/dev/ttyUSB2::INSTR?address=1' \
        tests/integration/drivers/polarization/test_rotator_hardware.py

The suites home the stage and turn it through a full turn: nothing may be clamped to it that
cannot rotate freely (cables, fibres). An SMC100 stage needs software limits (SL/SR) that
span at least [0, 360) deg for the modulo-360 checks.
"""

from __future__ import annotations

import pytest

from drivers.clock import SystemClock
from drivers.datatypes import ChannelMap
from drivers.interfaces import Rotator
from drivers.polarization.analyzer import Analyzer
from drivers.registry import open_device, parse_device_url
from drivers.testing.conformance import analyzer_conformance, rotator_conformance


def _rotator(device_url: str, clock: SystemClock) -> Rotator:
    if parse_device_url(device_url).kind != "rotator":
        pytest.skip(f"--device-url {device_url} is not a rotator")
    rotator = open_device(device_url, clock)
    assert isinstance(rotator, Rotator)
    return rotator


@pytest.mark.hardware
async def test_rotator_conformance_on_hardware(device_url: str) -> None:
    clock = SystemClock()
    await rotator_conformance(_rotator(device_url, clock), clock=clock)


@pytest.mark.hardware
async def test_analyzer_conformance_on_hardware(device_url: str) -> None:
    clock = SystemClock()
    rotator = _rotator(device_url, clock)
    await rotator.connect()
    await rotator.home()  # the suite's checks are relative; a known start keeps moves short
    analyzer = Analyzer(rotator, ChannelMap(h=1, v=2, d=3, a=4))
    await analyzer_conformance(analyzer, clock=clock)
