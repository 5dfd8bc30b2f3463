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
