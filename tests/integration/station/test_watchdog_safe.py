"""The watchdog's ``safe`` policy holds for the waveplate and the tagger; park is gated.

Processes as in test_daemon_pass.py (rig, daemon, real Mosquitto, all loopback, stopped by
PID); the station config is a copy of ``configs/stations/delingha.toml`` with a
``[watchdog]`` section (or a changed park position) and faults injected into the rig config.

- ``hwp = "safe"`` and a waveplate hang during TRACK: the pass is aborted at once (not run
  uncompensated to LOS), the mount stowed, the station FAULT until ``reset``, an ``hwp`` alarm.
- ``timetagger = "safe"`` and a tagger disconnect during TRACK: the same, a ``timetagger`` alarm.
- an operator ``park`` to a park position the safety gate refuses (under the horizon mask) is
  refused with the gate's reason and the mount does not move; a park whose straight path the
  gate refuses is flown as a gated dog-leg (the rule of a pass stow).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.datatypes import AltAz
from drivers.errors import LimitViolation
from station.bus.envelope import Ack
from station.config import load_station_config
from station.daemon.devices import gated_legs
from station.tracking.elements import parse_time
from station.tracking.planner import safety_gate
from tests.conftest import Broker
from tests.support import station_session as ss

STATION = ss.STATION
WALL_BOUND_S = 60.0
STATION_CONFIG = ss.ROOT / "configs/stations/delingha.toml"

#: clock seconds after START_UTC (AOS ~231 s): the device fails early in the track for 60 s
#: (3 s wall: the link recovers before the supervisor gives up, so only the pass can notice)
HWP_HANG = """
[[faults]]
device = "delingha.hwp"
kind = "hang"
at_s = 290.0
duration_s = 60.0
"""

TAGGER_DISCONNECT = """
[[faults]]
device = "delingha.timetagger"
kind = "disconnect"
at_s = 290.0
duration_s = 60.0
"""


def _station_config(tmp: Path, extra: str, *, park: tuple[float, float] | None = None) -> Path:
    text = STATION_CONFIG.read_text()
    if park is not None:
        assert "park_az_deg = 0.0" in text
        assert "park_el_deg = 90.0" in text
        text = text.replace("park_az_deg = 0.0", f"park_az_deg = {park[0]}")
        text = text.replace("park_el_deg = 90.0", f"park_el_deg = {park[1]}")
    path = tmp / "delingha.toml"
    path.write_text(text + extra)
    return path


async def _safe_policy_faults(broker: Broker, tmp: Path, role: str, faults: str) -> None:
    config = _station_config(tmp, f'\n[watchdog]\n{role} = "safe"\n')
    rig = tmp / "rig.toml"
    rig.write_text(ss.RIG_CONFIG.read_text() + faults)
    async with ss.station_session(broker, tmp, rig, config) as st:
        await st.book_first_pass_and_enable()
        await asyncio.wait_for(st.done.wait(), WALL_BOUND_S)
        await st.until(lambda: st.summary() == "FAULT", 10.0)
        refused = await st.req.send(STATION, "enable")
        assert refused[-1].ack is Ack.FAILED
        reset = await st.req.send(STATION, "reset", timeout_s=30.0)
        assert reset[-1].ack is Ack.COMPLETE, reset[-1].reason
        await st.until(lambda: st.summary() == "STANDBY", 10.0)

    alarms = [b for t, b in st.seen if t == "event/alarm"]
    assert any(a["kind"] == role for a in alarms), alarms
    summary = st.pass_complete()
    assert summary["outcome"] == "aborted", summary
    assert summary["bundle_status"] == "aborted"
    assert summary["events"] is not None
    assert summary["events"] > 0
    states = st.pass_states()
    assert "TRACK" in states
    assert states[-3:] == ["ABORT", "STOW", "IDLE"], states
    # aborted at the fault, not at LOS: the last recorded pointing sample is well before LOS
    pointing = (Path(summary["bundle"]) / "pointing.csv").read_text().splitlines()[1:]
    assert pointing
    last = float(pointing[-1].split(",")[0])
    assert last < parse_time(ss.START_UTC) + 400.0, last


@pytest.mark.mosquitto
async def test_safe_waveplate_hang_aborts_stows_and_faults(
    mosquitto: Broker, tmp_path: Path
) -> None:
    await _safe_policy_faults(mosquitto, tmp_path, "hwp", HWP_HANG)


@pytest.mark.mosquitto
async def test_safe_tagger_disconnect_aborts_stows_and_faults(
    mosquitto: Broker, tmp_path: Path
) -> None:
    await _safe_policy_faults(mosquitto, tmp_path, "timetagger", TAGGER_DISCONNECT)


@pytest.mark.mosquitto
async def test_park_is_gated_like_a_pass_stow(mosquitto: Broker, tmp_path: Path) -> None:
    """A park position under the horizon mask (12 deg at az 120; the config accepts >= 5) is
    refused with the gate's reason by ``park`` and by ``safe``; the mount stays put."""
    config = _station_config(tmp_path, "", park=(120.0, 6.0))
    async with ss.station_session(mosquitto, tmp_path, station_config=config) as st:
        moved = await st.req.send(STATION, "goto", {"az_deg": 90.0, "el_deg": 45.0}, timeout_s=30.0)
        assert moved[-1].ack is Ack.COMPLETE, moved[-1].reason
        park = await st.req.send(STATION, "park", timeout_s=30.0)
        assert park[-1].ack is Ack.FAILED, park
        assert "horizon" in (park[-1].reason or "").lower(), park[-1].reason
        safe = await st.req.send(STATION, "safe", timeout_s=30.0)
        assert safe[-1].ack is Ack.FAILED, safe
        assert "horizon" in (safe[-1].reason or "").lower(), safe[-1].reason
        az, el = await _rotctld_position(st.urls[STATION]["mount"])
    assert abs(az - 90.0) < 0.5, (az, el)
    assert abs(el - 45.0) < 0.5, (az, el)


async def _rotctld_position(url: str) -> tuple[float, float]:
    """The emulated mount's position asked over raw rotctld (``p``), not through our driver."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5.0)
    try:
        writer.write(b"p\n")
        await writer.drain()
        az = await asyncio.wait_for(reader.readline(), 5.0)
        el = await asyncio.wait_for(reader.readline(), 5.0)
        return float(az), float(el)
    finally:
        writer.close()
        await writer.wait_closed()


def test_park_path_refused_straight_is_flown_as_a_gated_dog_leg() -> None:
    """The one gated path every mover uses (``gated_legs``, the rule of a pass stow): a park
    whose straight slew dips under the horizon mask is flown azimuth first, then down; a park
    position under the mask is refused with the gate's reason."""
    gate = safety_gate(load_station_config(STATION_CONFIG))
    t = parse_time(ss.START_UTC)
    here, park = AltAz(130.0, 14.0), AltAz(60.0, 9.0)
    with pytest.raises(LimitViolation, match="horizon"):
        gate.check_slew(here, park, t)
    assert gated_legs(gate, here, park, t) == [AltAz(60.0, 14.0), park]
    with pytest.raises(LimitViolation, match="horizon"):
        gated_legs(gate, AltAz(90.0, 45.0), AltAz(120.0, 6.0), t)
