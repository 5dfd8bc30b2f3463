"""Pass schedule: prediction, auto selection, bookings, cancellations, missed passes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from station.config import load_station_config
from station.daemon.schedule import PassOutcome, Schedule, ScheduleError
from station.tracking.elements import load_elements, select

ROOT = Path(__file__).resolve().parents[4]
T0 = 1497700800.0  # 2017-06-17T12:00:00Z, the shipped Micius TLE's epoch


def _schedule(**schedule: object) -> Schedule:
    cfg = load_station_config(ROOT / "configs/stations/delingha.toml")
    settings = dataclasses.replace(cfg.daemon.schedule, **schedule)  # type: ignore[arg-type]
    cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(cfg.daemon, schedule=settings))
    elements = select(load_elements(ROOT / "configs/satellites/micius.tle"), norad_id=41731)
    s = Schedule(cfg, elements)
    s.refresh(T0)
    return s


def test_auto_takes_only_high_enough_passes() -> None:
    s = _schedule(min_max_elevation_deg=20.0)
    assert s.entries, "the shipped TLE has passes over Delingha within a day"
    for e in s.entries:
        assert e.eligible_auto == (e.pass_.max_elevation_deg >= 20.0)
    nxt = s.next_wanted(T0)
    assert nxt is not None
    assert nxt.pass_.max_elevation_deg >= 20.0


def test_booking_overrides_auto_and_cancel_overrides_booking() -> None:
    s = _schedule(auto=False)
    assert s.next_wanted(T0) is None
    low = min(s.entries, key=lambda e: e.pass_.max_elevation_deg)
    s.book(low.pass_.aos_s + 5.0)
    assert s.next_wanted(T0) is low
    s.cancel(low.pass_.aos_s)
    assert s.next_wanted(T0) is None


def test_unknown_aos_names_the_upcoming_passes() -> None:
    s = _schedule()
    with pytest.raises(ScheduleError, match="upcoming AOS: 2017-06-17T"):
        s.book(T0 + 3600.0 * 0.5 + 7.0)


def test_window_booking_picks_the_overlapping_pass_and_keeps_the_campaign() -> None:
    s = _schedule(auto=False)
    e = s.entries[1]
    booked = s.book_window(e.pass_.aos_s + 10.0, e.pass_.los_s - 10.0, {"id": "c1"})
    assert booked is e
    assert e.booked
    assert e.campaign is not None
    assert e.campaign["id"] == "c1"
    assert len(e.campaign["window"]) == 2
    with pytest.raises(ScheduleError, match="not after its start"):
        s.book_window(T0 + 10.0, T0, {"id": "c2"})


def test_passes_gone_by_are_missed_not_taken() -> None:
    s = _schedule(min_max_elevation_deg=0.0)
    first = s.entries[0]
    assert s.next_wanted(first.pass_.los_s + 10.0) is not first
    assert first.outcome is PassOutcome.MISSED


def test_refresh_keeps_operator_decisions() -> None:
    s = _schedule()
    e = s.entries[0]
    s.cancel(e.pass_.aos_s)
    s._predicted_until = float("-inf")  # force a re-prediction
    s.refresh(T0)
    again = s.find(e.pass_.aos_s)
    assert again.cancelled
    assert again is not e


def test_bookings_and_cancellations_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "delingha" / "schedule-decisions.json"
    s = _schedule(auto=False)
    s.decisions_path = path
    first, second = s.entries[0], s.entries[1]
    s.book_window(first.pass_.aos_s, first.pass_.los_s, {"id": "dl2017/w1", "peer": "lijiang"})
    s.cancel(second.pass_.aos_s)
    assert path.exists()
    # a restarted daemon: a new schedule reading the same file, predicting afresh
    cfg, elements = s.cfg, s.elements
    again = Schedule(cfg, elements, path)
    again.refresh(T0)
    a, b = again.find(first.pass_.aos_s), again.find(second.pass_.aos_s)
    assert a.booked
    assert a.campaign is not None
    assert a.campaign["id"] == "dl2017/w1"
    assert b.cancelled
    assert not b.wanted
    assert again.next_wanted(T0) is a


def test_unreadable_decisions_are_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "schedule-decisions.json"
    path.write_text("{not json")
    s = _schedule(auto=False)
    again = Schedule(s.cfg, s.elements, path)
    again.refresh(T0)
    assert not any(e.booked for e in again.entries)
