"""SystemClock and WarpClock: rate, epoch, ordering, cross-process agreement, warped waits."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time

import pytest

from drivers.clock import Clock, SystemClock, WarpClock, WarpSpec
from drivers.errors import ConfigError

EPOCH = 1_497_000_000.0  # 2017-06-09, a Micius-era simulated date


def test_warp_clock_starts_at_epoch_at_the_anchor() -> None:
    clock = WarpClock(EPOCH, rate=10.0)
    assert EPOCH <= clock.now() < EPOCH + 10.0 * 0.5  # a fresh anchor: within 0.5 wall s


def test_warp_clock_advances_at_its_rate() -> None:
    clock = WarpClock(EPOCH, rate=100.0)
    wall0, sim0 = time.monotonic(), clock.now()
    time.sleep(0.2)
    wall1, sim1 = time.monotonic(), clock.now()
    assert (sim1 - sim0) / (wall1 - wall0) == pytest.approx(100.0, rel=0.05)


def test_warp_clock_is_monotonic() -> None:
    clock = WarpClock(EPOCH, rate=1000.0)
    samples = [clock.now() for _ in range(10_000)]
    assert all(b >= a for a, b in itertools.pairwise(samples))


def test_past_anchor_puts_the_clock_ahead() -> None:
    anchor = time.time() - 10.0
    clock = WarpClock(EPOCH, anchor, rate=3.0)
    assert clock.now() == pytest.approx(EPOCH + 30.0, abs=1.0)


def test_datetime_is_utc() -> None:
    clock = WarpClock(EPOCH, rate=1.0)
    stamp = clock.now_datetime()
    assert stamp.tzinfo is not None
    assert stamp.year == 2017


def test_bad_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rate must be > 0"):
        WarpClock(EPOCH, rate=0.0)


def test_spec_round_trips_and_rejects_garbage() -> None:
    spec = WarpSpec(EPOCH, 1_700_000_000.25, 30.0)
    assert WarpSpec.parse(spec.to_string()) == spec
    with pytest.raises(ConfigError, match="missing"):
        WarpSpec.parse("epoch=1,rate=2")
    with pytest.raises(ConfigError, match="not a number"):
        WarpSpec.parse("epoch=x,anchor=1,rate=2")
    with pytest.raises(ConfigError, match="bad warp clock field"):
        WarpSpec.parse("epoch=1,anchor=1,speed=2")


def test_separate_processes_agree_on_the_time() -> None:
    clock = WarpClock(EPOCH, rate=50.0)
    code = (
        "from drivers.clock import WarpClock, WarpSpec; import sys;"
        "print(repr(WarpClock.from_spec(WarpSpec.parse(sys.argv[1])).now()))"
    )
    before = clock.now()
    out = subprocess.run(
        [sys.executable, "-c", code, clock.spec.to_string()],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    after = clock.now()
    child = float(out.stdout)
    # The child read its clock between our two readings (allow 1 ms of wall skew x rate).
    assert before - 0.05 <= child <= after + 0.05


async def test_sleep_until_never_returns_early() -> None:
    clock = WarpClock(EPOCH, rate=200.0)
    for step in (0.0, 0.5, 3.0, -1.0):
        target = clock.now() + step
        await clock.sleep_until(target)
        assert clock.now() >= target


async def test_warped_ten_minute_wait_takes_ten_minutes_over_rate() -> None:
    rate = 600.0
    clock = WarpClock(EPOCH, rate=rate)
    wall0, sim0 = time.monotonic(), clock.now()
    await clock.sleep(600.0)
    wall, sim = time.monotonic() - wall0, clock.now() - sim0
    assert sim >= 600.0
    # 600 s / 600 = 1 s of wall time; never less, and not much more (loaded CI machine).
    assert 600.0 / rate * 0.99 <= wall < 600.0 / rate + 2.0


async def test_system_clock_satisfies_the_protocol_and_sleeps() -> None:
    clock: Clock = SystemClock()
    assert isinstance(clock, Clock)
    assert clock.rate == 1.0
    t0 = clock.now()
    await clock.sleep(0.05)
    assert clock.now() - t0 >= 0.05
    assert abs(clock.now() - time.time()) < 1.0
    assert clock.to_wall(2.0) == 2.0


async def test_concurrent_sleepers_wake_in_order() -> None:
    clock = WarpClock(EPOCH, rate=100.0)
    woke: list[float] = []

    async def sleeper(delay: float) -> None:
        await clock.sleep(delay)
        woke.append(delay)

    await asyncio.gather(*(sleeper(d) for d in (30.0, 10.0, 20.0)))
    assert woke == [10.0, 20.0, 30.0]
