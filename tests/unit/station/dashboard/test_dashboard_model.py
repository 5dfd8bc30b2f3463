"""The dashboard model: MQTT messages in, the JSON document the page renders out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from station.dashboard.model import (
    ALARMS_KEPT,
    RESULTS_KEPT,
    TRAIL_KEPT,
    TRAIL_STEP_DEG,
    DashboardModel,
)


def feed(model: DashboardModel, topic: str, body: Any) -> bool:
    return model.update(topic, json.dumps(body).encode())


def node(model: DashboardModel, name: str) -> dict[str, Any]:
    return next(n for n in model.snapshot()["nodes"] if n["name"] == name)


def test_an_older_sessions_will_does_not_override_the_new_session() -> None:
    m = DashboardModel()
    feed(m, "qgs/v1/delingha/status", {"state": "online", "summary": "STANDBY", "session": 3})
    # broker session takeover: the old connection's Will arrives after the new "online"
    assert not feed(
        m, "qgs/v1/delingha/status", {"state": "offline", "session": 2, "reason": "lwt"}
    )
    assert node(m, "delingha")["link"] == "online"
    # the current session's Will is a real loss of the link
    feed(m, "qgs/v1/delingha/status", {"state": "offline", "session": 3, "reason": "lwt"})
    n = node(m, "delingha")
    assert (n["link"], n["reason"], n["role"]) == ("offline", "lwt", "station")


def test_pass_state_with_its_planned_track_and_the_pointing_trail() -> None:
    m = DashboardModel()
    track = [[1000.0 + i, 10.0 * i, 5.0 * i] for i in range(10)]
    feed(m, "qgs/v1/lijiang/state/pass", {"state": "TRACK", "pass_id": "p1", "track": track})
    feed(
        m,
        "qgs/v1/lijiang/telemetry/pointing",
        {
            "seq": 1,
            "t_utc": [1001.0, 1002.0],
            "az_deg": [359.5, 370.0],
            "el_deg": [30.0, 31.0],
            "error_arcsec": [2.0, -7.5],
        },
    )
    n = node(m, "lijiang")
    assert n["pass"]["state"] == "TRACK"
    assert n["track"] == track
    # the last sample is the mount's position (azimuth wrapped into [0, 360))
    assert n["pointing"] == {"t": 1002.0, "az_deg": 10.0, "el_deg": 31.0, "error_arcsec": 7.5}
    assert n["trail"] == [[1001.0, 359.5, 30.0], [1002.0, 10.0, 31.0]]
    # a state change without a track keeps it; IDLE clears it
    feed(m, "qgs/v1/lijiang/state/pass", {"state": "STOW", "pass_id": "p1"})
    assert node(m, "lijiang")["track"] == track
    feed(m, "qgs/v1/lijiang/state/pass", {"state": "IDLE"})
    assert node(m, "lijiang")["track"] == []


def test_trail_is_bounded_and_gaps_are_counted() -> None:
    m = DashboardModel()
    for seq in range(0, 2 * TRAIL_KEPT, 2):  # every other batch lost
        batch = {"seq": seq, "t_utc": [float(seq)], "az_deg": [0.5 * seq], "el_deg": [2.0]}
        feed(m, "qgs/v1/x/telemetry/pointing", batch)
    n = node(m, "x")
    assert len(n["trail"]) == TRAIL_KEPT
    assert n["telemetry_gaps"] == TRAIL_KEPT - 1


def test_trail_keeps_a_point_per_step_of_motion_and_reads_iso_times() -> None:
    m = DashboardModel()
    az = [10.0 + 0.01 * i for i in range(100)]  # 1 deg in 100 samples
    t_utc = [f"2021-04-29T17:22:{i // 10:02d}.{i % 10}00000Z" for i in range(100)]
    feed(m, "qgs/v1/x/telemetry/pointing", {"t_utc": t_utc, "az_deg": az, "el_deg": [5.0] * 100})
    n = node(m, "x")
    # one trail point per TRAIL_STEP_DEG of motion, the mount marker at the last sample
    assert len(n["trail"]) == 1 + int(1.0 / TRAIL_STEP_DEG)
    assert n["pointing"]["az_deg"] == az[-1]
    assert n["pointing"]["t"] == pytest.approx(1619716920.0 + 9.9)


def test_rates_alarms_and_untrusted_payloads() -> None:
    m = DashboardModel()
    feed(m, "qgs/v1/x/telemetry/rates", {"rates_hz": {"1": 10.0, "2": "bad"}, "events": 5})
    n = node(m, "x")
    assert n["rates_hz"] == {"1": 10.0}
    assert n["events_recorded"] == 5
    # info events are not alarms; warnings and errors are, the last ALARMS_KEPT of them
    assert not feed(m, "qgs/v1/x/event/pass_state", {"from": "IDLE", "to": "PREPOSITION"})
    for i in range(ALARMS_KEPT + 2):
        feed(
            m, "qgs/v1/x/event/alarm", {"kind": "pointing", "message": f"m{i}", "level": "warning"}
        )
    alarms = node(m, "x")["alarms"]
    assert len(alarms) == ALARMS_KEPT
    assert alarms[-1]["message"] == f"m{ALARMS_KEPT + 1}"
    version = m.version
    for topic, payload in (
        ("qgs/v1/x/status", b"\xff\xfe"),
        ("qgs/v1/x/status", b"[1, 2]"),
        ("qgs/v1/x/status", b"[" * 100_000),
        ("qgs/v2/x/status", b"{}"),
        ("qgs/v1/x/state/pass", b""),  # a cleared retained topic
        ("other/topic", b"{}"),
    ):
        assert not m.update(topic, payload)
    assert m.version == version
    # non-finite numbers never reach the page (its JSON would be invalid)
    feed(m, "qgs/v1/x/telemetry/pointing", {"az_deg": [float("nan")], "el_deg": [1.0]})
    json.dumps(m.snapshot(), allow_nan=False)


def test_coordinator_plan_live_and_results() -> None:
    m = DashboardModel()
    feed(m, "qgs/v1/coordinator/status", {"state": "online", "summary": "ACTIVE", "session": 1})
    assert node(m, "coordinator")["role"] == "coordinator"
    plan = {"campaign": "c", "mode": "bell", "windows": [{"id": "w1", "status": "booked"}]}
    feed(m, "qgs/v1/coordinator/state/plan", plan)
    live = {"window_id": "w1", "locked": True, "rate_hz": 2.0, "s": 2.6, "s_sigma": 0.1}
    feed(m, "qgs/v1/coordinator/telemetry/live", live)
    for i in range(RESULTS_KEPT + 1):
        feed(m, f"qgs/v1/coordinator/campaign/c/result/w{i}", {"status": "done"})
    n = node(m, "coordinator")
    assert n["plan"] == plan
    assert n["live"] == live
    assert list(n["results"]) == [f"w{i}" for i in range(1, RESULTS_KEPT + 1)]
