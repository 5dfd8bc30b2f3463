"""Fast subsets of the broker-outage and soak sections of `make reliability`.

- outage (reliability/outage.py) with a 10 s outage of the station's own broker instead of
  60 s: recording exact, retained status and pass state right within 2 s of the return, a
  command stamped during the outage refused as expired, a fresh one completed;
- soak (reliability/soak.py) over a quarter of a clock hour instead of 24 h, before the first
  pass: the idle daemons' and the rig's memory, descriptors, threads and tasks stay flat,
  and nothing is left running.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import outage, soak
from tests.conftest import Broker


@pytest.mark.mosquitto
@pytest.mark.timeout(300)
async def test_station_broker_outage_loses_nothing_and_runs_no_expired_command(
    tmp_path: Path,
) -> None:
    result = await outage.run_outage(tmp_path, outage_s=10.0)
    assert result.problems == [], result
    assert result.events == result.streamed
    assert result.late_command_ack == "FAILED", result
    assert "expired" in result.late_command_reason
    assert result.status_after_s is not None
    assert result.status_after_s <= outage.STATE_BOUND_S


@pytest.mark.mosquitto
@pytest.mark.timeout(300)
async def test_an_idle_quarter_hour_leaks_nothing(mosquitto: Broker, tmp_path: Path) -> None:
    # 16:55-17:10 clock: the daemons idle, enabled; the first pass (Delingha AOS 17:19:51)
    # has not begun
    result = await soak.run_soak(tmp_path, mosquitto.port, hours=0.25, start="2021-04-29T16:55:00Z")
    leaks = [p for p in result.problems if p != "no pass completed"]
    assert leaks == [], result.problems
    assert {t.name for t in result.traces} == {"delingha", "lijiang", "rig"}
    # both stations were idle (and settled) at the end, so no wait past it was needed
    assert result.idle_wait_s < soak.SAMPLE_S, result.idle_wait_s
    for trace in result.traces:
        assert trace.samples, trace
        assert trace.children_end == 0 or trace.name == "rig", trace


def test_the_end_sample_waits_for_both_stations_settled_in_idle() -> None:
    seen = soak.Watched()
    assert seen.not_idle(100.0) == ["delingha (unknown)", "lijiang (unknown)"]
    seen.pass_state = {"delingha": ("IDLE", 50.0), "lijiang": ("STOW", 95.0)}
    assert seen.not_idle(100.0) == ["lijiang (STOW)"]
    seen.pass_state["lijiang"] = ("IDLE", 99.0)  # just went idle: its wind-down may run on
    assert seen.not_idle(100.0) == ["lijiang (IDLE)"]
    assert seen.not_idle(99.0 + soak.SETTLE_WALL_S) == []
