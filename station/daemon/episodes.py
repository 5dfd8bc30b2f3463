"""One alarm per device-failure episode, not one per failed call (issue 10).

A device that fails keeps failing on every call until it recovers: a waveplate answering every
compensation move (2 Hz) with an error, a tagger control plane that times out on every health
probe. An alarm per failed call floods operators (110 ``hwp`` alarms in one pass of the fault
matrix) and hides the one thing they need: *when* it started, *whether* it is still going on,
and *when* it ended. :class:`DeviceEpisodes` turns failures into episodes per device role:

- the first failure of an episode raises the alarm at once (the bound is the caller's: how
  long its failing call took);
- further failures are counted; a "still failing" update (with the count) goes out at most
  every ``update_s`` clock seconds;
- an escalation (the link supervisor's ``degraded``/``failed``) is always published, once per
  level per episode: it is news, not repetition;
- the first success ends the episode with one ``recovered`` alarm (with the count and the
  duration).

Pure bookkeeping plus an async publish callback; times are station-clock seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.clock import Clock

#: (kind, message, level) -> publish an ``event/alarm``
Publish = Callable[[str, str, str], Awaitable[None]]

UPDATE_S = 30.0  #: clock s between "still failing" updates of one episode


@dataclass
class Episode:
    """One device's failure episode: since when, how many failures, what was said."""

    since_s: float
    failures: int = 0
    last_report_s: float = 0.0
    last_error: str = ""
    levels: set[str] = field(default_factory=set)  #: escalations already published


class DeviceEpisodes:
    """Failure episodes per device role (``mount``, ``hwp``, ``timetagger``)."""

    def __init__(self, publish: Publish, clock: Clock, *, update_s: float = UPDATE_S) -> None:
        self._publish = publish
        self._clock = clock
        self.update_s = update_s
        self._open: dict[str, Episode] = {}
        self.history: list[dict[str, float | int | str]] = []  #: closed episodes (bounded)

    def active(self, role: str) -> bool:
        return role in self._open

    def failures(self, role: str) -> int:
        episode = self._open.get(role)
        return 0 if episode is None else episode.failures

    async def failed(self, role: str, message: str, *, level: str = "warning") -> None:
        """One failure of ``role``: alarm if it opens an episode or an update is due."""
        now = self._clock.now()
        episode = self._open.get(role)
        if episode is None:
            episode = self._open[role] = Episode(since_s=now, last_report_s=now)
            episode.failures, episode.last_error = 1, message
            await self._publish(role, message, level)
            return
        episode.failures += 1
        episode.last_error = message
        if now - episode.last_report_s >= self.update_s:
            episode.last_report_s = now
            await self._publish(
                role,
                f"still failing: {episode.failures} failures in {now - episode.since_s:.0f} s; "
                f"last: {message}",
                level,
            )

    async def escalate(self, role: str, what: str, message: str, *, level: str) -> None:
        """A new severity (e.g. the link ``degraded`` or ``failed``): published once per
        episode and level, opening an episode if none is open."""
        now = self._clock.now()
        episode = self._open.get(role)
        if episode is None:
            episode = self._open[role] = Episode(since_s=now, last_report_s=now)
            episode.last_error = message
        if what in episode.levels:
            return
        episode.levels.add(what)
        episode.last_report_s = now
        await self._publish(role, message, level)

    async def recovered(self, role: str, message: str = "") -> None:
        """``role`` works again: close its episode with one ``recovered`` alarm."""
        episode = self._open.pop(role, None)
        if episode is None:
            return
        now = self._clock.now()
        if len(self.history) < 1000:
            self.history.append(
                {
                    "role": role,
                    "since_s": episode.since_s,
                    "until_s": now,
                    "failures": episode.failures,
                    "last_error": episode.last_error,
                }
            )
        text = f"recovered after {now - episode.since_s:.1f} s ({episode.failures} failures)"
        await self._publish(role, f"{text}: {message}" if message else text, "info")
