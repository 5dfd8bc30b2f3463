"""Fixtures for the mount driver unit tests: a clock that never waits."""

from __future__ import annotations

import pytest

from tests.support.clocks import StepClock


@pytest.fixture
def clock() -> StepClock:
    return StepClock()
