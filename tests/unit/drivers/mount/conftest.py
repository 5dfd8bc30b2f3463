"""Fixtures for the mount driver unit tests: a clock that never waits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


class StepClock:
    """A Clock whose sleeps advance simulated time at once (deterministic tick counts)."""

    rate = 1.0

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(seconds, 0.0)

    async def sleep_until(self, t: float) -> None:
        if t > self.t:
            self.sleeps.append(t - self.t)
            self.t = t

    def to_wall(self, seconds: float) -> float:
        return seconds


@pytest.fixture
def clock() -> StepClock:
    return StepClock()
