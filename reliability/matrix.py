"""Fault matrix: every device of one station × every fault kind that applies to it.

Each cell is a fresh rig + daemon (:func:`reliability.station.station_run`) with one
``[[faults]]`` entry appended to a temporary copy of the rig config, injected during TRACK of
a warped pass (AOS at ~231 clock s after the clock's start; the fault at 290 s, 60 clock s
long: 3 wall s at 20x). What the daemon reached is compared with docs/operations.md
("Watchdogs", default policies ``mount = "safe"``, ``hwp = "degrade"``,
``timetagger = "degrade"``): ``safe`` → pass aborted, station ``FAULT``, an alarm naming the
device; ``degrade`` → an alarm, the pass goes on to LOS (outcome ``complete``), no ``FAULT``.
Every wait is bounded (a cell that does not finish is a ``hang``); a daemon that exits is a
``crash``; the bundle is checked with ``verify_bundle`` and the manifest's ``quality``.

Bounds (docs/operations.md "Watchdogs"): the first alarm naming the device within
:data:`ALARM_BOUND_S` clock seconds of the fault, i.e. while the 60 s fault is still on; at
most :data:`MAX_DEVICE_ALARMS` alarms naming the device (one episode: the alarm, "still
failing" updates, escalations, the recovery; not one per failed call); every event the
tagger sent is in the bundle, or the manifest says the events are incomplete.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reliability.station import (
    RIG_CONFIG,
    STATION,
    station_run,
    tagger_streamed,
    with_tagger_extensions,
)
from station.recording.manifest import read_manifest
from station.recording.verify import verify_bundle
from station.tracking.elements import parse_time

START = "2021-04-29T17:17:00Z"  #: the rig clock's start: Delingha's AOS (17:19:52) at ~172 s
FAULT_AT_S = 240.0  #: clock s after START: ~68 s into TRACK
FAULT_FOR_S = 60.0  #: clock s (6 wall s at RATE)
RATE = 10.0  #: 20x (the tests' rate) is not faithful on a loaded 2-core machine
PASS_BOUND_S = 150.0  #: wall s from enable to pass_complete (the pass takes ~40 s at 20x)
SETTLE_BOUND_S = 25.0  #: wall s for the summary state to settle after pass_complete
#: clock s from the fault to the first alarm naming the device. The slowest path is a device
#: that stops answering: the driver's I/O timeout is wall time (2 s: a real link's latency
#: does not warp), 20 clock s at RATE 10, plus the tagger probe period (5 clock s) or the
#: mount's [watchdog] mount_lost_s (15 s beyond the beam, sampled through 5 s replies) and
#: the publication. At RATE 1 the same paths take 2 + 5 s (probe) and 15-20 s (mount).
ALARM_BOUND_S = 30.0
#: alarms naming the device in one 60 s fault episode: the first, "still failing" updates
#: (every 30 s), escalations (link degraded, failed, pass aborted) and the recovery
MAX_DEVICE_ALARMS = 8

POLICY = {"mount": "safe", "hwp": "degrade", "timetagger": "degrade"}  #: settings.py defaults
#: alarm kinds that name each device (docs/mqtt-api.md event/alarm)
DEVICE_ALARMS = {
    "mount": {"mount", "pointing", "stow_failed"},
    "hwp": {"hwp"},
    "timetagger": {
        "timetagger",
        "stream_stalled",
        "stream_gap",
        "dead_channel",
        "pps_missing",
        "clock_jump",
        "tagger_latch",
    },
}
#: fault kinds per device and their parameters (sim_hardware/faults.py)
KINDS: dict[str, dict[str, dict[str, float]]] = {
    "mount": {
        "disconnect": {},
        "hang": {},
        "garbage": {},
        "slow": {"delay_s": 5.0},
        "error_reply": {},
        "stall": {},
    },
    "hwp": {
        "disconnect": {},
        "hang": {},
        "garbage": {},
        "slow": {"delay_s": 5.0},
        "error_reply": {},
    },
    "timetagger": {
        "disconnect": {},
        "hang": {},
        "garbage": {},
        "slow": {"delay_s": 5.0},
        "error_reply": {},
        "latch": {"channel": 1.0},
        "clock_jump": {"jump_ps": 1.0e9},
    },
}
QUICK = [("mount", "hang"), ("hwp", "disconnect"), ("timetagger", "latch")]


@dataclass
class Cell:
    """One device × fault: what was expected and what the daemon did."""

    device: str
    kind: str
    params: dict[str, float]
    policy: str
    outcome: str | None = None  #: pass_complete outcome (None: never reached)
    summary: str | None = None  #: the station's summary state after the pass
    alarms: list[str] = field(default_factory=list)
    first_alarm_s: float | None = None  #: clock s from the fault to the first device alarm
    #: (as received by a subscriber; alarms before the fault, e.g. from load, are not counted)
    hung: bool = False
    crashed: bool = False
    bundle_ok: bool | None = None
    bundle_status: str | None = None
    events: int | None = None
    streamed: int | None = None
    events_complete: bool | None = None
    faithful: bool | None = None  #: the daemon's loops kept up with the clock (quality)
    max_loop_lag_s: float | None = None
    fault_s: float | None = None  #: clock s from the fault to FAULT (summary event), if any
    note: str = ""
    wall_s: float = 0.0

    @property
    def state(self) -> str:
        """recovered / degraded / safe (FAULT), as reached."""
        if self.summary == "FAULT":
            return "safe"
        return "degraded" if self.device_alarms() else "recovered"

    def device_alarms(self) -> list[str]:
        return [a for a in self.alarms if a in DEVICE_ALARMS[self.device]]

    def expected(self) -> str:
        if self.policy == "safe":
            return "aborted, FAULT, device alarm"
        return "complete, no FAULT, device alarm"

    def problems(self) -> list[str]:
        """Every way this cell disagrees with the documented outcome (empty: it agrees)."""
        out: list[str] = []
        if self.hung:
            out.append("hung (no pass_complete within the bound)")
        if self.crashed:
            out.append("daemon exited")
        if self.policy == "safe":
            if self.outcome != "aborted":
                out.append(f"outcome {self.outcome} (expected aborted)")
            if self.summary != "FAULT":
                out.append(f"summary {self.summary} (expected FAULT)")
        else:
            if self.outcome != "complete":
                out.append(f"outcome {self.outcome} (expected complete)")
            if self.summary == "FAULT":
                out.append("FAULT (expected degrade)")
        if not self.device_alarms():
            out.append("no alarm naming the device")
        elif self.first_alarm_s is None:
            out.append("no alarm naming the device after the fault began")
        elif self.first_alarm_s > FAULT_FOR_S:
            out.append(
                f"first alarm {self.first_alarm_s:.0f} s after the fault began, i.e. only "
                f"after the {FAULT_FOR_S:.0f} s fault was over"
            )
        elif self.first_alarm_s > ALARM_BOUND_S:
            out.append(
                f"first alarm {self.first_alarm_s:.0f} s after the fault began "
                f"(bound {ALARM_BOUND_S:.0f} s)"
            )
        if len(self.device_alarms()) > MAX_DEVICE_ALARMS:
            out.append(
                f"{len(self.device_alarms())} alarms naming the device (one episode: at most "
                f"{MAX_DEVICE_ALARMS})"
            )
        if self.bundle_ok is False:
            out.append("bundle does not verify")
        if self.streamed is not None and self.events is not None and self.events != self.streamed:
            out.append(
                f"recorded {self.events} of the {self.streamed} events the tagger says it sent"
                + (
                    " while the manifest says events_complete"
                    if self.events_complete
                    else " (the manifest marks the events incomplete)"
                )
            )
        if self.events_complete is False and self.device != "timetagger":
            out.append("events lost before the recorder (quality.events_complete false)")
        return out


def rig_config_with_faults(
    tmp: Path,
    faults: Sequence[tuple[str, str]],
    *,
    duration_s: float = FAULT_FOR_S,
    params: dict[str, float] | None = None,
) -> Path:
    """A copy of the rig config in ``tmp`` with one ``[[faults]]`` entry per (device, kind),
    at :data:`FAULT_AT_S` for ``duration_s`` (params: :data:`KINDS`, or ``params``)."""
    lines: list[str] = []
    for device, kind in faults:
        lines += [
            "",
            "[[faults]]",
            f'device = "{STATION}.{device}"',
            f'kind = "{kind}"',
            f"at_s = {FAULT_AT_S}",
            f"duration_s = {duration_s}",
        ]
        chosen = KINDS[device][kind] if params is None else params
        lines += [f"{k} = {v!r}" for k, v in chosen.items()]
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "rig.toml"
    path.write_text(with_tagger_extensions(RIG_CONFIG.read_text()) + "\n".join(lines) + "\n")
    return path


async def run_cell(
    tmp: Path,
    broker_port: int,
    device: str,
    kind: str,
    also: Sequence[tuple[str, str]] = (),
) -> Cell:
    """One cell; ``also``: more (device, kind) faults at the same moment (the fast test puts
    two ``degrade`` devices in one pass). ``alarms`` then holds every device's alarms."""
    params = KINDS[device][kind]
    cell = Cell(device, kind, params, POLICY[device])
    rig = rig_config_with_faults(tmp, [(device, kind), *also])
    fault_clock = parse_time(START) + FAULT_AT_S
    t0 = time.monotonic()
    try:
        async with station_run(tmp, broker_port, rig_config=rig, rate=RATE, start_utc=START) as run:
            await run.book_first_pass_and_enable()
            reached = await run.until(
                lambda: run.pass_complete() is not None or run.daemon.poll() is not None,
                PASS_BOUND_S,
            )
            cell.crashed = run.daemon.poll() is not None
            cell.hung = not reached and not cell.crashed
            done = run.pass_complete()
            if done is not None:
                await run.until(
                    lambda: run.summary() == "FAULT",
                    SETTLE_BOUND_S if cell.policy == "safe" else 1.0,
                )
                cell.outcome = str(done.get("outcome"))
                cell.bundle_status = done.get("bundle_status")
                cell.events = done.get("events")
                bundle = done.get("bundle")
                if bundle:
                    report = verify_bundle(bundle)
                    cell.bundle_ok = report.ok
                    quality = read_manifest(Path(bundle)).get("quality") or {}
                    cell.events_complete = quality.get("events_complete")
                    cell.faithful = quality.get("faithful")
                    cell.max_loop_lag_s = quality.get("max_loop_lag_s")
                cell.streamed = await tagger_streamed(run.urls[STATION]["timetagger"])
            cell.summary = run.summary()
            alarms = run.bodies("event/alarm")
            cell.alarms = [str(a.get("kind")) for a in alarms]
            arrivals = [
                run.clock_at(s.wall) - fault_clock
                for s in run.seen
                if s.topic == "event/alarm" and s.body.get("kind") in DEVICE_ALARMS[device]
            ]
            after = [t for t in arrivals if t >= 0.0]
            cell.first_alarm_s = round(min(after), 2) if after else None
            faults = [
                run.clock_at(s.wall) - fault_clock
                for s in run.seen
                if s.topic == "event/summary" and s.body.get("state") == "FAULT"
            ]
            cell.fault_s = round(min(faults), 2) if faults else None
            if cell.hung or cell.crashed:
                cell.note = run.daemon_log_tail(400).replace("\n", " ")[-300:]
    except Exception as exc:  # a harness failure is a cell result, never a stop of the matrix
        cell.note = f"harness: {type(exc).__name__}: {exc}"[:300]
    cell.wall_s = round(time.monotonic() - t0, 1)
    return cell


def cells(quick: bool) -> list[tuple[str, str]]:
    if quick:
        return list(QUICK)
    return [(d, k) for d, kinds in KINDS.items() for k in kinds]


async def run_matrix(tmp: Path, broker_port: int, quick: bool = False) -> list[Cell]:
    out: list[Cell] = []
    for device, kind in cells(quick):
        cell = await run_cell(tmp / f"{device}-{kind}", broker_port, device, kind)
        print(
            f"matrix {device} {kind}: {cell.outcome} {cell.summary} {cell.alarms} "
            f"{cell.problems()} ({cell.wall_s} s)",
            flush=True,
        )
        out.append(cell)
    return out


def as_json(cell: Cell) -> dict[str, Any]:
    return {**cell.__dict__, "state": cell.state, "problems": cell.problems()}
