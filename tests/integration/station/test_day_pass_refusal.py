"""A day pass the Sun gate refuses leaves a parked mount parked and the station ENABLED.

Found by the 24 h soak (docs/reliability.md §6): at 05:28 UTC on 2021-04-30 the Sun stands
67° high at Delingha, 22.6° from the zenith park. The pass was refused before its first slew
(right), and then the stow asked the gate to "slew" the parked mount to where it already
was; the gate refused the park target, the stow failed, and the station sat in FAULT for the
rest of the day, missing the next night's passes. A stow now moves nothing when the mount is
still parked; the Sun watch (station/daemon/sun_watch.py) says with one ``sun_exposure``
alarm that the Sun is inside the exclusion around the park (the daemon does not move a
parked mount out of the way; docs/operations.md).

Under the same Sun the operator's ``safe`` cannot park either (the gate refuses the park
position); it still takes the station out of ENABLED, so no further pass is taken.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from station.bus.envelope import Ack
from tests.conftest import Broker
from tests.support.station_session import station_session

#: ~4.5 clock min before Delingha's day pass (AOS 05:28:24, max el 21.6°, Sun el ~67°)
START_UTC = "2021-04-30T05:24:00Z"


@pytest.mark.mosquitto
@pytest.mark.timeout(180)
async def test_a_refused_day_pass_leaves_the_station_enabled(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with station_session(mosquitto, tmp_path, start_utc=START_UTC) as s:
        await s.book_first_pass_and_enable()
        await s.until(lambda: s.done.is_set(), 60.0)
        done = s.pass_complete()
        assert done["outcome"] == "failed", done
        assert "unsafe (sun)" in done["reason"], done
        assert "nothing was commanded" in done["reason"], done
        # the stow after it: no stow_failed, the station stays ENABLED (not FAULT)
        await s.until(lambda: "STOW" in s.pass_states() or "IDLE" in s.pass_states(), 10.0)
        alarms = [b for t, b in s.seen if t == "event/alarm"]
        kinds = [a.get("kind") for a in alarms]
        assert "stow_failed" not in kinds, alarms
        assert s.summary() == "ENABLED", (s.summary(), alarms)
        # the Sun watch said, once, that the Sun is on the parked mount (22.6° < 30°)
        exposed = [a for a in alarms if a.get("kind") == "sun_exposure"]
        assert [a["level"] for a in exposed] == ["error"], alarms
        assert "22." in exposed[0]["message"], exposed
        assert "exclusion 30 deg" in exposed[0]["message"], exposed
        # and it is still commandable: the schedule answers
        schedule = await s.req.send("delingha", "get_schedule")
        assert schedule[-1].result is not None


@pytest.mark.mosquitto
@pytest.mark.timeout(180)
async def test_safe_whose_park_is_refused_still_leaves_the_station_in_standby(
    mosquitto: Broker, tmp_path: Path
) -> None:
    # the same noon Sun 22.6° from the zenith park: the operator's `safe` cannot park (the
    # gate refuses the park position, and says so) but must still stop the station taking
    # passes; it used to leave it ENABLED
    async with station_session(mosquitto, tmp_path, start_utc=START_UTC) as s:
        assert (await s.req.send("delingha", "enable"))[-1].ack is Ack.COMPLETE
        await s.until(lambda: s.summary() == "ENABLED", 10.0)
        safe = await s.req.send("delingha", "safe", timeout_s=30.0)
        assert safe[-1].ack is Ack.FAILED, safe
        assert "unsafe (sun)" in (safe[-1].reason or ""), safe[-1].reason
        await s.until(lambda: s.summary() == "STANDBY", 10.0)
