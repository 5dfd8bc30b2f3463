"""Fault-matrix defects of issue 10, each on a real rig + daemon + Mosquitto.

Processes as in reliability/matrix.py (:func:`reliability.station.station_run`: the rig, the
daemon and a watcher, stopped by PID), at the matrix's rate (10x) with ``[[faults]]`` entries
in a copy of the rig config, injected during TRACK (AOS ~172 s after START).

- a time tagger whose control plane hangs while its stream flows on, and a waveplate that
  answers every command with an error (both ``degrade``): a ``timetagger`` alarm and an
  ``hwp`` alarm while the fault is still on (within ``matrix.ALARM_BOUND_S``), one episode
  each (not one alarm per failed move: 110 before), each ``recovered`` after, the pass goes on;
- a mount whose every reply is 5 s late (``safe``): it cannot be commanded, so the pass is
  aborted and the station goes to FAULT with a ``mount`` alarm (it completed ENABLED before);
- a mount answering errors (``safe``): aborted, FAULT, and every event the tagger sent is in
  the bundle (about 10 000 were lost when a second cancel cut the drain short).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reliability import matrix
from reliability.station import (
    STATION,
    Run,
    station_run,
    tagger_streamed,
)
from station.tracking.elements import parse_time
from tests.conftest import Broker

FAULT_AT_S = matrix.FAULT_AT_S  #: clock s after matrix.START: ~68 s into TRACK
PASS_BOUND_S = 90.0  #: wall s for an aborted pass to complete


def _alarms(run: Run, kind: str) -> list[tuple[float, str]]:
    """(clock s after the fault began, message) of every alarm of ``kind``."""
    fault = parse_time(matrix.START) + FAULT_AT_S
    return [
        (run.clock_at(s.wall) - fault, str(s.body.get("message")))
        for s in run.seen
        if s.topic == "event/alarm" and s.body.get("kind") == kind
    ]


@pytest.mark.mosquitto
@pytest.mark.timeout(120)
async def test_tagger_control_plane_hang_and_waveplate_errors_alarm_once_each(
    mosquitto: Broker, tmp_path: Path
) -> None:
    duration = 60.0
    rig = matrix.rig_config_with_faults(
        tmp_path, [("timetagger", "hang"), ("hwp", "error_reply")], duration_s=duration
    )
    fault_end = parse_time(matrix.START) + FAULT_AT_S + duration
    async with station_run(
        tmp_path, mosquitto.port, rig_config=rig, rate=matrix.RATE, start_utc=matrix.START
    ) as run:
        await run.book_first_pass_and_enable()
        # until both devices have recovered (or 25 clock s after the fault ended)
        reached = await run.until(
            lambda: (
                all(
                    any(m.startswith("recovered") for _, m in _alarms(run, k))
                    for k in ("timetagger", "hwp")
                )
                or run.clock_at(time.time()) > fault_end + 25.0
            ),
            60.0,
        )
        assert reached, run.daemon_log_tail()
        states = run.pass_states()
        summary = run.summary()
    for kind in ("timetagger", "hwp"):
        alarms = _alarms(run, kind)
        assert alarms, (kind, run.bodies("event/alarm"))
        first_s, first = alarms[0]
        assert 0.0 <= first_s <= matrix.ALARM_BOUND_S, (kind, alarms)
        assert first_s < duration, (kind, alarms)  # while the fault was still on
        assert not first.startswith("recovered"), (kind, alarms)
        # one episode: the alarm, "still failing" updates every 30 s, escalations, recovery
        assert len(alarms) <= 5, (kind, alarms)
        recovered = [t for t, m in alarms if m.startswith("recovered")]
        assert len(recovered) == 1, (kind, alarms)
        assert recovered[0] >= duration - 1.0, (kind, alarms)
    assert "slow" not in _alarms(run, "timetagger")[0][1]  # a hang, said as such
    assert "ABORT" not in states, states  # degrade: the pass goes on
    assert summary != "FAULT", summary


@pytest.mark.mosquitto
@pytest.mark.timeout(150)
async def test_mount_that_answers_5_s_late_cannot_be_commanded_and_faults(
    mosquitto: Broker, tmp_path: Path
) -> None:
    rig = matrix.rig_config_with_faults(tmp_path, [("mount", "slow")])  # replies 5 s late
    async with station_run(
        tmp_path, mosquitto.port, rig_config=rig, rate=matrix.RATE, start_utc=matrix.START
    ) as run:
        await run.book_first_pass_and_enable()
        done = await run.until(lambda: run.pass_complete() is not None, PASS_BOUND_S)
        assert done, run.daemon_log_tail()
        await run.until(lambda: run.summary() == "FAULT", 20.0)
        summary = run.summary()
    complete = run.pass_complete()
    assert complete is not None
    assert complete["outcome"] == "aborted", complete
    assert "cannot be commanded" in str(complete["reason"]), complete
    assert summary == "FAULT", summary
    mount = _alarms(run, "mount")
    assert mount, run.bodies("event/alarm")
    after = [t for t, _ in mount if t >= 0.0]
    assert after, mount
    assert after[0] <= matrix.ALARM_BOUND_S, mount


@pytest.mark.mosquitto
@pytest.mark.timeout(150)
async def test_mount_error_replies_fault_and_every_sent_event_is_recorded(
    mosquitto: Broker, tmp_path: Path
) -> None:
    rig = matrix.rig_config_with_faults(tmp_path, [("mount", "error_reply")])
    async with station_run(
        tmp_path, mosquitto.port, rig_config=rig, rate=matrix.RATE, start_utc=matrix.START
    ) as run:
        await run.book_first_pass_and_enable()
        done = await run.until(lambda: run.pass_complete() is not None, PASS_BOUND_S)
        assert done, run.daemon_log_tail()
        await run.until(lambda: run.summary() == "FAULT", 20.0)
        summary = run.summary()
        streamed = await tagger_streamed(run.urls[STATION]["timetagger"])
    complete = run.pass_complete()
    assert complete is not None
    assert complete["outcome"] == "aborted", complete
    assert summary == "FAULT", summary
    assert streamed is not None
    assert streamed > 0
    assert complete["events"] == streamed, (complete, streamed)
