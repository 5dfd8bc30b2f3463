"""The Sun watch (station/daemon/sun_watch.py) over a real morning at Delingha.

The station's own safety gate and Sun series; the mount stands at its zenith park all day
(2021-04-30, the Sun 67° high at noon, inside the 30° exclusion around the zenith from
about an hour before noon to an hour after). The alarm times are checked against the
Sun's zenith distance computed here from the Sun series directly.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from drivers.datatypes import AltAz
from station.config import load_station_config
from station.daemon import sun_watch
from station.daemon.sun_watch import Exposure, SunWatch
from station.tracking.elements import parse_time
from station.tracking.planner import safety_gate
from station.tracking.sunmoon import SUN_MODEL_ERROR_DEG, sun_altaz

ROOT = Path(__file__).resolve().parents[4]
ZENITH = AltAz(0.0, 90.0)
STEP = 60.0  #: clock s between the watch's looks in this test


async def _day(start: str, hours: float, here: AltAz = ZENITH) -> list[tuple[float, str, str]]:
    cfg = load_station_config(ROOT / "configs/stations/delingha.toml")
    alarms: list[tuple[float, str, str]] = []
    now = [0.0]

    async def publish(kind: str, message: str, level: str) -> None:
        assert kind == "sun_exposure"
        alarms.append((now[0], level, message))

    watch = SunWatch(safety_gate(cfg), publish)
    t0 = parse_time(start)
    for k in range(int(hours * 3600 / STEP)):
        now[0] = t0 + k * STEP
        await watch.check(here, now[0])
    return alarms


def _entry_time(t0: float, hours: float, radius: float) -> float:
    """First time the Sun is within ``radius`` of the zenith (1 s resolution)."""
    t = t0 + np.arange(0.0, hours * 3600.0, 1.0)
    site = load_station_config(ROOT / "configs/stations/delingha.toml").site
    inside = 90.0 - sun_altaz(t, site).el_deg < radius + SUN_MODEL_ERROR_DEG
    return float(t[np.flatnonzero(inside)[0]])


async def test_a_parked_mount_is_warned_ahead_then_told_once_and_cleared() -> None:
    alarms = await _day("2021-04-30T03:00:00Z", 5.0)
    assert [level for _, level, _ in alarms] == ["warning", "error", "info"], alarms
    (warned, _, ahead), (inside, _, now), (clear, _, after) = alarms
    entry = _entry_time(parse_time("2021-04-30T03:00:00Z"), 5.0, 30.0)
    # the error at the first look after the Sun entered, the warning a look-ahead before
    assert 0.0 <= inside - entry < STEP, (inside, entry)
    assert abs((inside - warned) - sun_watch.LOOKAHEAD_S) <= STEP + sun_watch.STEP_S
    assert "reaches the exclusion in 15 min" in ahead, ahead
    distance = float(re.search(r"([0-9.]+) deg from the Sun", now).group(1))  # type: ignore[union-attr]
    assert 29.7 <= distance <= 30.05, now  # just inside: the Sun moves ~0.2°/min here
    assert "close the cover" in now, now
    assert clear - inside > 3600.0, (inside, clear)  # ~2 h around noon, one alarm
    assert after.startswith("clear:"), after


async def test_a_mount_pointing_away_from_the_sun_hears_nothing() -> None:
    # low in the north all morning: the Sun (south of the zenith, east to west) stays > 60°
    assert await _day("2021-04-30T03:00:00Z", 5.0, AltAz(0.0, 20.0)) == []


async def test_a_night_with_a_parked_mount_hears_nothing() -> None:
    assert await _day("2021-04-29T14:00:00Z", 6.0) == []


async def test_assess_names_the_time_left() -> None:
    cfg = load_station_config(ROOT / "configs/stations/delingha.toml")

    async def publish(kind: str, message: str, level: str) -> None:
        raise AssertionError("assess publishes nothing")

    watch = SunWatch(safety_gate(cfg), publish)
    entry = _entry_time(parse_time("2021-04-30T03:00:00Z"), 5.0, 30.0)
    state, until = watch.assess(ZENITH, entry - 600.0)
    assert state is Exposure.APPROACHING
    assert until is not None
    assert abs(until - 600.0) <= sun_watch.STEP_S
    assert watch.assess(ZENITH, entry + 1.0) == (Exposure.INSIDE, 0.0)
    assert watch.assess(ZENITH, entry - sun_watch.LOOKAHEAD_S - 120.0) == (Exposure.CLEAR, None)
