"""The station's own broker down for 60 s in the middle of a pass.

A rig session runs a warped pass at :data:`RATE` (slow enough that the pass outlives the
outage); the daemon books it and is enabled on a Mosquitto of its own (no persistence: the
restarted broker has lost every retained message, the worst case). 10 wall s into TRACK the
broker is stopped (SIGTERM, by PID) for :data:`OUTAGE_S` wall seconds and started again on
the same port. Measured:

- **recording exact**: the bundle's events equal the timestamps the emulated tagger says it
  sent (its DLT ``status`` extension, asked over raw ZeroMQ), the bundle verifies and the
  manifest's ``quality.events_complete`` is true;
- **state correct after the return**: wall seconds from the broker listening again until a
  fresh subscriber holds the station's retained ``status`` (online, the daemon's session)
  and a retained ``state/pass`` that names the pass being tracked (bound
  :data:`STATE_BOUND_S`);
- **expired commands not run late**: a ``standby`` the operator stamped during the outage
  (station clock, expiring :data:`EXPIRES_IN_S` clock s later) and that reaches the station
  only after the return — what a client that queues while disconnected would deliver — must
  be refused as expired, and the pass must go on; a fresh ``get_schedule`` right after must
  complete.

Every process is stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from drivers.clock import WarpClock
from reliability.broker import free_port, mosquitto
from reliability.station import (
    RIG_CONFIG,
    STATION,
    Run,
    Seen,
    station_run,
    tagger_streamed,
    with_tagger_extensions,
)
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack
from station.bus.requester import Requester
from station.recording.manifest import read_manifest
from station.recording.verify import verify_bundle

RATE = 4.0  #: clock s per wall s: Delingha's ~400 s pass lasts ~100 wall s, > the outage
START = "2021-04-29T17:19:00Z"  #: ~50 clock s before Delingha's AOS
OUTAGE_S = 60.0  #: wall s without the broker
INTO_TRACK_S = 10.0  #: wall s of TRACK before the broker stops
STATE_BOUND_S = 2.0  #: issue 10: state correct within 2 s of the broker's return
EXPIRES_IN_S = 5.0  #: clock s the outage-time command was valid for (the outage is longer)
TRACK_BOUND_S = 90.0  #: wall s from enable to TRACK
PASS_BOUND_S = 240.0  #: wall s from the return to pass_complete
COMMAND = "python -m reliability --only outage"


@dataclass
class BrokerOutage:
    """What one 60 s outage of the station's broker did."""

    outage_s: float = OUTAGE_S
    passed: bool = False
    events: int | None = None
    streamed: int | None = None
    bundle_ok: bool | None = None
    events_complete: bool | None = None
    outcome: str | None = None
    status_after_s: float | None = None  #: wall s from the return to a correct retained status
    pass_state_after_s: float | None = None  #: ... to a retained state/pass naming the pass
    late_command_ack: str | None = None  #: the outage-time command's final ack
    late_command_reason: str = ""
    fresh_command_ack: str | None = None
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0


async def _watch_again(port: int, run: Run, t_up: float, result: BrokerOutage) -> None:
    """Subscribe after the return; note when the retained state is right; feed ``run.seen``."""
    prefix = f"qgs/v1/{STATION}/"
    async with aiomqtt.Client("127.0.0.1", port, identifier="reliability-outage-watch") as c:
        await c.subscribe(f"{prefix}#", qos=1)
        async for message in c.messages:
            topic = str(message.topic).removeprefix(prefix)
            if topic.startswith(("telemetry/", "live/")):
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                body = json.loads(payload) if payload else {}
            except ValueError:
                continue
            if not isinstance(body, dict):
                continue
            now = time.time()
            run.seen.append(Seen(now, topic, body))
            if (
                topic == "status"
                and result.status_after_s is None
                and body.get("state") == "online"
            ):
                result.status_after_s = round(now - t_up, 3)
            if (
                topic == "state/pass"
                and result.pass_state_after_s is None
                and body.get("state") in ("TRACK", "ACQUIRE", "SLEW")
            ):
                result.pass_state_after_s = round(now - t_up, 3)


def _rig_config(tmp: Path) -> Path:
    """The rig config with the tagger's ``status`` extension on (to count what it sent)."""
    tmp.mkdir(parents=True, exist_ok=True)
    rig = tmp / "rig.toml"
    rig.write_text(with_tagger_extensions(RIG_CONFIG.read_text()))
    return rig


async def run_outage(tmp: Path, outage_s: float = OUTAGE_S) -> BrokerOutage:
    """One pass with an ``outage_s`` outage of the station's broker (module doc; the fast
    test in ``make test`` uses a shorter one)."""
    result = BrokerOutage(outage_s=outage_s)
    t0 = time.monotonic()
    rig = _rig_config(tmp)
    port = free_port()
    stack = contextlib.ExitStack()
    stack.enter_context(mosquitto(tmp / "broker1", port=port))
    watcher: asyncio.Task[None] | None = None
    finished = False
    try:
        try:
            async with station_run(tmp, port, rig_config=rig, rate=RATE, start_utc=START) as run:
                await run.book_first_pass_and_enable()
                if not await run.until(lambda: "TRACK" in run.pass_states(), TRACK_BOUND_S):
                    result.problems.append(f"no TRACK within {TRACK_BOUND_S} s")
                    return result
                await asyncio.sleep(INTO_TRACK_S)
                stack.close()  # the broker stops (SIGTERM by PID)
                await asyncio.sleep(outage_s * 0.5)
                stamped_clock = run.clock_at(time.time())  # the operator presses enter now
                await asyncio.sleep(outage_s * 0.5)
                stack = contextlib.ExitStack()
                stack.enter_context(mosquitto(tmp / "broker2", port=port))
                t_up = time.time()
                watcher = asyncio.create_task(_watch_again(port, run, t_up, result))
                await run.until(
                    lambda: (
                        result.status_after_s is not None and result.pass_state_after_s is not None
                    ),
                    10.0,
                )
                # the station is back (a command published before it resubscribed is lost:
                # its session is not persistent); now the queued one arrives
                await _late_command(port, run, stamped_clock, result)
                if not await run.until(lambda: run.pass_complete() is not None, PASS_BOUND_S):
                    result.problems.append(
                        f"no pass_complete within {PASS_BOUND_S} s of the return"
                    )
                    return result
                done = run.pass_complete() or {}
                result.outcome = str(done.get("outcome"))
                result.events = done.get("events")
                bundle = done.get("bundle")
                if bundle:
                    result.bundle_ok = verify_bundle(bundle).ok
                    quality = read_manifest(Path(bundle)).get("quality") or {}
                    result.events_complete = quality.get("events_complete")
                tagger = run.urls[STATION]["timetagger"]
                result.streamed = await tagger_streamed(tagger)
                finished = True
        except aiomqtt.MqttError as exc:
            # The harness's own operator and watcher lost the broker in the outage on
            # purpose; that surfaces when their contexts close. Anything earlier is real.
            if not finished:
                cause = exc.__context__ or exc
                where = "".join(traceback.format_exception(cause)[-4:])
                result.problems.append(f"run failed: {cause!r} at {where}")
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        stack.close()
        result.wall_s = round(time.monotonic() - t0, 1)
    result.problems += _problems(result)
    result.passed = not result.problems
    return result


async def _late_command(port: int, run: Run, stamped: float, result: BrokerOutage) -> None:
    """Deliver the outage-time ``standby`` and a fresh ``get_schedule`` (module doc)."""
    # The operator's clock reads ``stamped`` now: the command carries the moment it was typed.
    typed_then = WarpClock(stamped, time.time(), run.spec.rate)
    async with Requester(
        BrokerConfig(port=port), typed_then, client_id="reliability-outage-operator"
    ) as late:
        acks = await late.send(STATION, "standby", expires_in_s=EXPIRES_IN_S, timeout_s=15.0)
        result.late_command_ack = acks[-1].ack.name if acks else None
        result.late_command_reason = (acks[-1].reason or "") if acks else ""
    async with Requester(
        BrokerConfig(port=port), WarpClock.from_spec(run.spec), client_id="reliability-outage-op2"
    ) as fresh:
        acks = await fresh.send(STATION, "get_schedule", timeout_s=15.0)
        result.fresh_command_ack = acks[-1].ack.name if acks else None


def _problems(r: BrokerOutage) -> list[str]:
    out: list[str] = []
    if r.outcome != "complete":
        out.append(f"pass outcome {r.outcome} (expected complete)")
    if r.events is None or r.streamed is None or r.events != r.streamed:
        out.append(f"recorded {r.events} of {r.streamed} streamed events")
    if r.bundle_ok is not True:
        out.append("bundle does not verify")
    if r.events_complete is not True:
        out.append("manifest does not say events_complete")
    for what, value in (("status", r.status_after_s), ("state/pass", r.pass_state_after_s)):
        if value is None or value > STATE_BOUND_S:
            out.append(f"retained {what} right {value} s after the return (bound {STATE_BOUND_S})")
    if r.late_command_ack == Ack.COMPLETE.name:
        out.append("the outage-time standby ran late")
    if r.fresh_command_ack != Ack.COMPLETE.name:
        out.append(f"a fresh get_schedule ended {r.fresh_command_ack}")
    return out
