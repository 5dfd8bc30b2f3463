"""Device-failure episodes: one alarm per episode, not one per failed call (issue 10).

The fault matrix found 110 ``hwp`` alarms in one pass (one per failed compensation move at
2 Hz) and alarms that came only after the fault was over (the supervisor re-raised a failed
call only after its reconnect episode). Checked here: :class:`DeviceEpisodes` publishes the
first failure, "still failing" updates at most every ``update_s``, each escalation once and
one recovery; the supervisor tells its error listeners of a failure before it starts to
reconnect, and of the first success after failures.
"""

from __future__ import annotations

import pytest

from drivers.clock import WarpClock
from drivers.errors import DeviceError, DeviceTimeout, NotConnected
from drivers.supervision import LinkState, Supervisor
from station.daemon.episodes import DeviceEpisodes


class ManualClock(WarpClock):
    """A clock that moves only when told (``t``, POSIX s)."""

    def __init__(self, t: float = 1_600_000_000.0) -> None:
        super().__init__(epoch=t, rate=1.0)
        self.t = t

    def now(self) -> float:
        return self.t


def _recorder() -> tuple[list[tuple[str, str, str]], DeviceEpisodes, ManualClock]:
    published: list[tuple[str, str, str]] = []

    async def publish(kind: str, message: str, level: str) -> None:
        published.append((kind, message, level))

    clock = ManualClock()
    return published, DeviceEpisodes(publish, clock, update_s=30.0), clock


async def test_a_failure_at_every_call_is_one_episode_with_updates_and_one_recovery() -> None:
    published, episodes, clock = _recorder()
    for _ in range(110):  # 55 s of failed compensation moves at 2 Hz
        await episodes.failed("hwp", "polarization compensation failed: error 9")
        clock.t += 0.5
    assert episodes.active("hwp")
    assert episodes.failures("hwp") == 110
    kinds = [k for k, _, _ in published]
    assert kinds == ["hwp", "hwp"], published  # the first failure, one update at 30 s
    assert "error 9" in published[0][1]
    assert "still failing: 61 failures in 30 s" in published[1][1], published[1]
    await episodes.recovered("hwp", "moves succeed again")
    await episodes.recovered("hwp")  # no episode open: nothing
    assert len(published) == 3
    kind, message, level = published[2]
    assert (kind, level) == ("hwp", "info")
    assert message.startswith("recovered after 55.0 s (110 failures)"), message
    assert not episodes.active("hwp")
    assert episodes.history[0]["failures"] == 110
    # a new failure opens a new episode at once
    await episodes.failed("hwp", "again")
    assert published[-1][1] == "again"


async def test_escalations_are_published_once_per_level_and_episode() -> None:
    published, episodes, _ = _recorder()
    await episodes.failed("mount", "DeviceTimeout: no reply")
    await episodes.escalate("mount", "degraded", "link degraded", level="error")
    await episodes.escalate("mount", "degraded", "link degraded", level="error")
    await episodes.failed("mount", "DeviceTimeout: no reply")
    await episodes.escalate("mount", "failed", "link failed", level="error")
    assert [m for _, m, _ in published] == [
        "DeviceTimeout: no reply",
        "link degraded",
        "link failed",
    ]
    other = [k for k, _, _ in published if k != "mount"]
    assert other == []
    await episodes.recovered("mount")
    await episodes.escalate("mount", "degraded", "link degraded", level="error")
    assert published[-1][1] == "link degraded"  # a new episode: news again


class FlakyDevice:
    """A device whose operations and connects fail while ``broken`` (nothing mocked in the
    supervisor: this is the thing at the far end of its link)."""

    url = "test://flaky"

    def __init__(self) -> None:
        self.broken = False
        self.connects = 0

    async def connect(self) -> None:
        self.connects += 1
        if self.broken:
            raise NotConnected("refused", device=self.url)

    async def close(self) -> None:
        return None

    async def read(self) -> float:
        if self.broken:
            raise DeviceTimeout("no reply", device=self.url)
        return 1.0


async def test_supervisor_tells_error_listeners_before_it_reconnects() -> None:
    device = FlakyDevice()
    clock = WarpClock(epoch=1_600_000_000.0, rate=1000.0)  # backoff of s -> ms
    sup = Supervisor(device, clock, degraded_after=3, max_attempts=3, seed=1)
    await sup.start()
    heard: list[tuple[DeviceError | None, int]] = []
    sup.add_error_listener(lambda error: heard.append((error, device.connects)))
    assert await sup.call(lambda d: d.read()) == 1.0
    assert heard == []  # successes without earlier failures are not news

    device.broken = True
    with pytest.raises(DeviceTimeout):  # re-raised after the (failed) reconnect episode
        await sup.call(lambda d: d.read())
    # heard before the first reconnect attempt (connects still 1: the start)
    assert len(heard) == 1
    error, connects_then = heard[0]
    assert isinstance(error, DeviceTimeout)
    assert connects_then == 1
    assert device.connects > 1  # and then it did try to reconnect
    assert sup.state is LinkState.FAILED

    device.broken = False
    await sup.reconnect()
    assert await sup.call(lambda d: d.read()) == 1.0
    assert heard[-1] == (None, device.connects)  # the first success after failures
    assert await sup.call(lambda d: d.read()) == 1.0
    assert len(heard) == 2
