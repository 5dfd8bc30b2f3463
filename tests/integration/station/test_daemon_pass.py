"""The daemon runs a warped pass against the rig through a real Mosquitto.

Processes: Mosquitto (fixture), the rig (`python -m sim_hardware`, world + wire-level
emulators) and the daemon (`qgs station run`), all on loopback, stopped by PID. The rig and
the daemon share one warped timeline (the rig's ``_clock`` in its URL file).

Checked end to end: the pass states in order (pre-position, wait, track, stow), a bad
command gets FAILED with a reason and changes nothing, acks flow for good commands, the
HWP was driven along the frame rotation, the recorded event count equals what the
emulated tagger says it streamed, and `qgs bundle verify` passes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from station.bus.envelope import Ack
from tests.conftest import Broker
from tests.support.station_session import (
    RIG_CONFIG,
    STATION,
    WALL_BOUND_S,
    station_session,
    tagger_streamed,
    verify_with_cli,
)


@pytest.mark.mosquitto
async def test_daemon_executes_a_warped_pass(mosquitto: Broker, tmp_path: Path) -> None:
    async with station_session(mosquitto, tmp_path) as st:
        req = st.req
        # bad commands: FAILED with a reason, nothing changes
        before = await req.send(STATION, "get_schedule")
        bad = await req.send(STATION, "goto", {"az_deg": 10.0, "el_deg": 300.0})
        assert bad[-1].ack is Ack.FAILED
        assert "el_deg" in (bad[-1].reason or "")
        unknown = await req.send(STATION, "launch_missiles")
        assert unknown[-1].ack is Ack.FAILED
        assert "unknown command" in (unknown[-1].reason or "")
        wrong_state = await req.send(STATION, "standby")
        assert wrong_state[-1].ack is Ack.FAILED
        assert "STANDBY" in (wrong_state[-1].reason or "")
        after = await req.send(STATION, "get_schedule")
        assert before[-1].result is not None
        assert after[-1].result is not None
        assert after[-1].result["summary"] == before[-1].result["summary"] == "STANDBY"
        assert after[-1].result["pass_state"] == "IDLE"

        await st.book_first_pass_and_enable()
        await asyncio.wait_for(st.done.wait(), WALL_BOUND_S)
        streamed = await tagger_streamed(st.urls[STATION]["timetagger"])

    states = st.pass_states()
    assert states[:5] == ["PREPOSITION", "WAIT_AOS", "TRACK", "STOW", "IDLE"], states
    summary = st.pass_complete()
    assert summary["outcome"] == "complete", summary
    assert summary["bundle_status"] == "complete"
    assert summary["events"] > 0
    assert summary["events"] == streamed, "recorded events differ from what the tagger sent"

    # pointing and rate telemetry flowed; the HWP followed the frame rotation
    assert any(t == "telemetry/pointing" for t, _ in st.seen)
    assert any(t == "telemetry/rates" for t, _ in st.seen)
    rows = (Path(summary["bundle"]) / "waveplate.csv").read_text().splitlines()[1:]
    commanded = {round(float(r.split(",")[2]), 1) for r in rows}
    assert len(commanded) > 5, "the HWP was not driven along the frame rotation"
    verify_with_cli(summary["bundle"])


@pytest.mark.mosquitto
async def test_abort_mid_pass_stows_and_keeps_the_recording(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with station_session(mosquitto, tmp_path) as st:
        nothing = await st.req.send(STATION, "abort")
        assert nothing[-1].ack is Ack.FAILED
        assert "no pass" in (nothing[-1].reason or "")
        await st.book_first_pass_and_enable()
        await st.until(lambda: "TRACK" in st.pass_states(), 40.0)
        await asyncio.sleep(1.0)  # record a little
        aborted = await st.req.send(STATION, "abort", timeout_s=30.0)
        assert [r.ack for r in aborted] == [Ack.ACK, Ack.INPROGRESS, Ack.COMPLETE], aborted
        assert aborted[-1].result == {"outcome": "aborted", "pass_state": "IDLE"}
        await asyncio.wait_for(st.done.wait(), 10.0)

    assert st.pass_states()[-3:] == ["ABORT", "STOW", "IDLE"]
    summary = st.pass_complete()
    assert summary["outcome"] == "aborted"
    assert summary["bundle_status"] == "aborted"
    assert summary["events"] > 0
    verify_with_cli(summary["bundle"])


#: clock seconds after START_UTC: the waveplate hangs early in the track, the mount later
FAULTS = """
[[faults]]
device = "delingha.hwp"
kind = "hang"
at_s = 290.0
duration_s = 30.0

[[faults]]
device = "delingha.mount"
kind = "hang"
at_s = 380.0
duration_s = 60.0
"""


@pytest.mark.mosquitto
async def test_watchdogs_degrade_on_the_waveplate_and_fault_on_the_mount(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """Policy [watchdog] hwp = "degrade": alarm, the pass goes on; mount = "safe": the pass
    is aborted, the mount parked once it answers again, the station FAULT until reset."""
    config = tmp_path / "rig.toml"
    config.write_text(RIG_CONFIG.read_text() + FAULTS)
    async with station_session(mosquitto, tmp_path, config) as st:
        await st.book_first_pass_and_enable()
        await asyncio.wait_for(st.done.wait(), WALL_BOUND_S)
        await st.until(lambda: st.summary() == "FAULT", 20.0)
        refused = await st.req.send(STATION, "enable")
        assert refused[-1].ack is Ack.FAILED
        reset = await st.req.send(STATION, "reset", timeout_s=30.0)
        assert reset[-1].ack is Ack.COMPLETE, reset[-1].reason
        await st.until(lambda: st.summary() == "STANDBY", 10.0)

    alarms = [b for t, b in st.seen if t == "event/alarm"]
    assert any(a["kind"] == "hwp" for a in alarms), alarms
    summary = st.pass_complete()
    assert summary["outcome"] == "aborted", summary
    assert "device error" in summary["reason"]
    assert summary["bundle_status"] == "aborted"
    states = st.pass_states()
    assert "TRACK" in states
    assert states[-3:] == ["ABORT", "STOW", "IDLE"]
