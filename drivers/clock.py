"""Control-plane time: the real clock and a warped (faster-than-real) simulated clock.

Control code never calls ``time.time()`` or a bare ``asyncio.sleep()`` for timing: it asks a
:class:`Clock`. A :class:`WarpClock` maps wall time to simulated UTC as

    sim = epoch + (wall - anchor) * rate

where ``epoch`` is the simulated POSIX time at the wall instant ``anchor`` (POSIX seconds on
this machine's realtime clock). Separate processes given the same (epoch, anchor, rate)
therefore agree on the simulated time, which is how a rig and several station daemons share
one warped timeline. Durations handed to :meth:`Clock.sleep` are in clock seconds; a warped
10-minute wait at rate 30 takes 20 s of wall time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from drivers.errors import ConfigError


@runtime_checkable
class Clock(Protocol):
    """Source of control-plane time (POSIX seconds, UTC) and of timed waits."""

    @property
    def rate(self) -> float:
        """Clock seconds per wall second (1 for the real clock)."""
        ...

    def now(self) -> float:
        """Current time as POSIX seconds (UTC)."""
        ...

    def now_datetime(self) -> datetime:
        """Current time as an aware UTC datetime."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time (<= 0 returns at once)."""
        ...

    async def sleep_until(self, t: float) -> None:
        """Wait until :meth:`now` >= ``t`` (POSIX seconds)."""
        ...

    def to_wall(self, seconds: float) -> float:
        """Convert a clock duration to wall seconds (for asyncio timeouts)."""
        ...


class _ClockBase:
    rate: float

    def now(self) -> float:
        raise NotImplementedError

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def to_wall(self, seconds: float) -> float:
        return seconds / self.rate

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)

    async def sleep_until(self, t: float) -> None:
        # asyncio.sleep can wake a little early (loop granularity); re-check so the
        # postcondition now() >= t always holds. Bounded: each pass sleeps the remainder.
        while True:
            remaining = t - self.now()
            if remaining <= 0:
                return
            await asyncio.sleep(max(remaining / self.rate, 1e-4))


class SystemClock(_ClockBase):
    """The machine's realtime clock (rate 1)."""

    rate = 1.0

    def now(self) -> float:
        return time.time()


@dataclass(frozen=True, slots=True)
class WarpSpec:
    """The three numbers that define a shared warped timeline."""

    epoch: float  #: simulated POSIX time at the anchor instant
    anchor: float  #: wall POSIX time at which simulation time equals ``epoch``
    rate: float  #: simulated seconds per wall second

    def to_string(self) -> str:
        """Serialize as ``epoch=...,anchor=...,rate=...`` (for command lines)."""
        return f"epoch={self.epoch!r},anchor={self.anchor!r},rate={self.rate!r}"

    @classmethod
    def parse(cls, text: str) -> WarpSpec:
        """Parse :meth:`to_string` output; raises :class:`ConfigError` naming the fault."""
        fields: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("epoch", "anchor", "rate"):
                raise ConfigError(
                    f"bad warp clock field {part!r}; expected epoch=<s>,anchor=<s>,rate=<x>",
                    key="clock",
                )
            try:
                fields[key] = float(value)
            except ValueError:
                raise ConfigError(
                    f"warp clock {key}={value!r} is not a number", key="clock"
                ) from None
        missing = {"epoch", "anchor", "rate"} - fields.keys()
        if missing:
            raise ConfigError(f"warp clock is missing {sorted(missing)}", key="clock")
        return cls(fields["epoch"], fields["anchor"], fields["rate"])


class WarpClock(_ClockBase):
    """Simulated UTC running ``rate`` times faster than wall time from a shared anchor.

    Within a process the clock is monotonic: wall time is read once at construction and
    advanced with ``time.monotonic()``, so a realtime-clock step (NTP) does not make the
    simulation jump backwards.
    """

    def __init__(self, epoch: float, anchor: float | None = None, rate: float = 1.0) -> None:
        if not rate > 0:
            raise ConfigError(f"warp clock rate must be > 0, got {rate}", key="clock.rate")
        self.epoch = float(epoch)
        self.anchor = time.time() if anchor is None else float(anchor)
        self.rate = float(rate)
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    @classmethod
    def from_spec(cls, spec: WarpSpec) -> WarpClock:
        return cls(spec.epoch, spec.anchor, spec.rate)

    @property
    def spec(self) -> WarpSpec:
        return WarpSpec(self.epoch, self.anchor, self.rate)

    def _wall(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)

    def now(self) -> float:
        return self.epoch + (self._wall() - self.anchor) * self.rate
