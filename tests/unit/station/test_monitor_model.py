"""The monitor's model: built from MQTT messages alone."""

from __future__ import annotations

import json

from station.monitor import MonitorModel


def msg(model: MonitorModel, topic: str, body: object) -> None:
    model.update(topic, json.dumps(body).encode())


def test_status_pass_pointing_rates_and_alarms() -> None:
    model = MonitorModel()
    msg(model, "qgs/v1/delingha/status", {"state": "online", "summary": "ENABLED", "session": 3})
    msg(model, "qgs/v1/delingha/state/pass", {"state": "TRACK"})
    msg(model, "qgs/v1/delingha/telemetry/pointing", {"seq": 0, "error_arcsec": [1.0, -4.5]})
    msg(model, "qgs/v1/delingha/telemetry/rates", {"seq": 0, "rates_hz": {"1": 1200.0}})
    msg(model, "qgs/v1/delingha/event/fault", {"level": "error", "message": "mount lost"})
    msg(model, "qgs/v1/delingha/event/pass_state", {"from": "WAIT_AOS", "to": "TRACK"})
    msg(model, "qgs/v1/delingha/event/alarm", {"kind": "hwp", "level": "warning", "message": "x"})
    view = model.stations["delingha"]
    assert (view.status, view.summary, view.session) == ("online", "ENABLED", 3)
    assert view.pass_state == "TRACK"
    assert view.pointing_error_arcsec == 4.5
    assert view.rates_hz == {"1": 1200.0}
    assert list(view.alarms) == ["fault [error] mount lost", "hwp [warning] x"]


def test_stale_will_from_older_session_is_ignored() -> None:
    model = MonitorModel()
    msg(model, "qgs/v1/lijiang/status", {"state": "online", "summary": "STANDBY", "session": 5})
    msg(model, "qgs/v1/lijiang/status", {"state": "offline", "session": 4, "reason": "lwt"})
    assert model.stations["lijiang"].status == "online"
    msg(model, "qgs/v1/lijiang/status", {"state": "offline", "session": 5, "reason": "lwt"})
    assert model.stations["lijiang"].status == "offline"


def test_telemetry_gaps_are_counted_and_junk_ignored() -> None:
    model = MonitorModel()
    for seq in (0, 1, 4):
        msg(model, "qgs/v1/nanshan/telemetry/rates", {"seq": seq, "rates_hz": {}})
    assert model.stations["nanshan"].telemetry_gaps == 2
    model.update("qgs/v1/nanshan/status", b"\xff not json")
    model.update("other/topic/x/y", b"{}")
    msg(model, "qgs/v1/nanshan/status", [1, 2])
    assert model.stations["nanshan"].status == "?"
    assert set(model.stations) == {"nanshan"}


def test_coordinator_live_figures_show_in_one_line() -> None:
    model = MonitorModel()
    topic = "qgs/v1/coordinator/telemetry/live"
    msg(model, topic, {"seq": 0, "window_id": "w1", "locked": False, "frames": {"a": 3, "b": 2}})
    assert model.stations["coordinator"].live == "w1: searching (5 frames)"
    body = {"seq": 1, "window_id": "w1", "locked": True, "coincidences": 412, "rate_hz": 2.0}
    msg(model, topic, {**body, "s": 2.5, "s_sigma": 0.125, "qber": None})
    assert model.stations["coordinator"].live == "w1: 412 coinc 2.00/s S 2.50±0.12"
    # binary frames of the live channel share qgs/v1/#: ignored, never a crash
    model.update("qgs/v1/delingha/live/events", b"QGSL\x01\xff\x00")
    assert "delingha" not in model.stations or model.stations["delingha"].live == "-"


def test_a_restarted_station_is_online_again_and_bad_status_is_survived() -> None:
    model = MonitorModel()
    msg(model, "qgs/v1/delingha/status", {"state": "online", "summary": "ENABLED", "session": 9})
    # a malformed retained status (what a broken client might leave) must not stop the monitor
    msg(model, "qgs/v1/delingha/status", {"state": "online", "session": "nine"})
    model.update("qgs/v1/delingha/status", b"\xff not json")
    assert model.stations["delingha"].status == "online"
