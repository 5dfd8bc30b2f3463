"""The tests' one step clock: a :class:`drivers.clock.Clock` whose sleeps never wait.

Protocol and driver unit tests need deterministic time: ``sleep(s)`` records ``s`` and (by
default) advances :attr:`t` at once, so tick counts, timeouts measured in clock seconds and
pacing rules can be asserted exactly. ``advance=False`` keeps the time still (for tests
where only the wire matters), ``yield_to_loop=True`` lets other tasks run at each sleep
(for drivers whose background readers must make progress while the caller "waits").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime


class StepClock:
    """A clock that never waits (module doc). ``t`` is POSIX seconds."""

    rate = 1.0

    def __init__(
        self, t: float = 1_000.0, *, advance: bool = True, yield_to_loop: bool = False
    ) -> None:
        self.t = t
        self.sleeps: list[float] = []
        self._advance = advance
        self._yield = yield_to_loop

    @classmethod
    def still(cls) -> StepClock:
        """Time stands at 0 and every sleep lets the loop run (wire-only tests)."""
        return cls(0.0, advance=False, yield_to_loop=True)

    def now(self) -> float:
        return self.t

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._advance:
            self.t += max(seconds, 0.0)
        if self._yield:
            await asyncio.sleep(0)

    async def sleep_until(self, t: float) -> None:
        if t > self.t:
            await self.sleep(t - self.t)
        elif self._yield:
            await asyncio.sleep(0)

    def to_wall(self, seconds: float) -> float:
        return seconds
