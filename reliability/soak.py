"""Soak: two station daemons on the rig through a day of warped time, sampled from outside.

The rig (``configs/rig/delingha_lijiang.toml``: Delingha and Lijiang) runs on a warped clock
at :data:`RATE` from :data:`START`; both daemons are enabled and take every pass their
``[schedule] auto`` rule admits, on one Mosquitto. Every :data:`SAMPLE_S` wall seconds each
process (the two daemons and the rig) is read from ``/proc``: resident memory (``VmRSS``),
open file descriptors, threads and child processes. The daemons also report their own
asyncio task count (``telemetry/process``), when they publish it.

Bars (issue 10): resident memory at the end within 10 % of the baseline, the baseline being
the median of the samples taken after the first pass of that station ended (the import and
first-pass warm-up is not a leak); file descriptors, threads and asyncio tasks at the end no
more than the baseline's maximum plus a small slack (:data:`FD_SLACK`, ...); no child
process of a daemon left; every bundle a ``pass_complete`` named verifies.

The end sample is an idle one: a pass still running or closing at the end of the clock span
(drain, bundle, live publisher) holds fds, threads and tasks that are not leaks. So the soak
samples on past the end until every station's retained ``state/pass`` has been ``IDLE`` for
:data:`SETTLE_WALL_S` (long enough for a fresh ``telemetry/process``), at most
:data:`IDLE_WAIT_S` wall seconds; a station not idle by then is a problem.

Every process is started here and stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from drivers.clock import WarpClock
from reliability.broker import ROOT, stop
from reliability.station import start_daemon, start_rig
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack
from station.bus.requester import CommandTimeout, Requester
from station.processes import live_children
from station.recording.verify import verify_bundle

RIG_CONFIG = ROOT / "configs/rig/delingha_lijiang.toml"
STATIONS = ("delingha", "lijiang")
#: 10 clock min before the first night pass (Delingha AOS 17:19:51): the day to 17:10 on
#: 04-30 then holds two night passes per station (17:19 and 17:22 on 04-29, 16:57 and 16:59
#: on 04-30) and two day passes each (~03:55 and ~05:28), which the Sun gate refuses
#: (`qgs passes --station configs/stations/delingha.toml --now 2021-04-29T17:10:00Z`)
START = "2021-04-29T17:10:00Z"
#: Each station's shipped config plus this: at 48x the daemons' loops fall behind the clock on
#: a 2-core machine (20 ms of scheduling delay is ~1 deg of a LEO track), the following error
#: grows, and the mount counts as lost after ``mount_lost_s`` beyond the beam: the pass is
#: aborted (under every policy) and, under ``safe``, the station held in FAULT for the rest of
#: the day. A soak is about leaks over many whole passes, not pointing, so its mount watchdog
#: only alarms and its "lost" bound is the longest allowed (600 clock s, longer than a pass).
SOAK_WATCHDOG = '\n[watchdog]\nmount = "degrade"\nmount_lost_s = 600.0\n'

RATE = 48.0  #: clock s per wall s: a day in 30 wall min
DAY_S = 86_400.0
SAMPLE_S = 5.0  #: wall s between samples
RSS_BAR = 0.10  #: relative growth allowed
FD_SLACK = 4
THREAD_SLACK = 2
TASK_SLACK = 5
COMMAND = "python -m reliability --only soak"
#: wall s a station's ``state/pass`` must have been IDLE before the end sample: a pass's
#: wind-down ends within a few wall s, and ``telemetry/process`` comes every 10 wall s
SETTLE_WALL_S = 12.0
IDLE_WAIT_S = 180.0  #: wall s at most to wait past the end for both stations to be idle


@dataclass
class Sample:
    """One reading of one process."""

    wall: float
    clock: float
    rss_kib: int
    fds: int
    threads: int
    children: int
    tasks: int | None = None


@dataclass
class ProcessTrace:
    """All samples of one process and what they add up to."""

    name: str
    samples: list[Sample] = field(default_factory=list)
    baseline_from_clock: float | None = None  #: the clock time the baseline starts
    rss_baseline_kib: float | None = None
    rss_end_kib: int | None = None
    rss_growth: float | None = None
    fds_baseline_max: int | None = None
    fds_end: int | None = None
    threads_baseline_max: int | None = None
    threads_end: int | None = None
    tasks_baseline_max: int | None = None
    tasks_end: int | None = None
    children_end: int | None = None


@dataclass
class Soak:
    """The whole run."""

    clock_hours: float
    rate: float
    passes: dict[str, int] = field(default_factory=dict)
    #: "<station> <outcome>" -> count (a refused day pass ends ``failed``, with a reason)
    outcomes: dict[str, int] = field(default_factory=dict)
    #: one row per pass_complete: station, pass_id, outcome, reason, events, verified
    pass_log: list[dict[str, Any]] = field(default_factory=list)
    #: unhandled exceptions in the daemons' logs (Traceback / never retrieved), first lines
    log_errors: list[str] = field(default_factory=list)
    bundles_verified: int = 0
    bundles_failed: list[str] = field(default_factory=list)
    traces: list[ProcessTrace] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    passed: bool = False
    wall_s: float = 0.0
    #: wall s sampled past the end of the clock span until both stations were idle
    idle_wait_s: float = 0.0


def _proc_status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def sample(pid: int, clock: float) -> Sample | None:
    """One /proc reading of ``pid`` (None when it is gone)."""
    try:
        status = _proc_status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return Sample(
        time.time(),
        clock,
        int(status.get("VmRSS", "0 kB").split()[0]),
        fds,
        int(status.get("Threads", "0")),
        len(live_children(pid)),
    )


def summarize(trace: ProcessTrace) -> list[str]:
    """Fill the trace's figures; the problems against the bars (module doc)."""
    base = [s for s in trace.samples if s.clock >= (trace.baseline_from_clock or 0.0)]
    if len(base) < 3 or not trace.samples:
        return [f"{trace.name}: too few samples after the baseline start ({len(base)})"]
    end = trace.samples[-1]
    head = base[: max(3, len(base) // 4)]  # the baseline: the first quarter after warm-up
    trace.rss_baseline_kib = statistics.median(s.rss_kib for s in head)
    trace.rss_end_kib = end.rss_kib
    trace.rss_growth = round(end.rss_kib / trace.rss_baseline_kib - 1.0, 4)
    trace.fds_baseline_max = max(s.fds for s in head)
    trace.fds_end = end.fds
    trace.threads_baseline_max = max(s.threads for s in head)
    trace.threads_end = end.threads
    trace.children_end = end.children
    tasks = [s.tasks for s in head if s.tasks is not None]
    trace.tasks_baseline_max = max(tasks) if tasks else None
    trace.tasks_end = end.tasks
    out = []
    if trace.rss_growth > RSS_BAR:
        out.append(f"{trace.name}: RSS grew {trace.rss_growth:.1%} (bar {RSS_BAR:.0%})")
    if end.fds > trace.fds_baseline_max + FD_SLACK:
        out.append(f"{trace.name}: {end.fds} fds at the end, {trace.fds_baseline_max} before")
    if end.threads > trace.threads_baseline_max + THREAD_SLACK:
        out.append(f"{trace.name}: {end.threads} threads, {trace.threads_baseline_max} before")
    if (
        trace.tasks_baseline_max is not None
        and end.tasks is not None
        and end.tasks > trace.tasks_baseline_max + TASK_SLACK
    ):
        out.append(f"{trace.name}: {end.tasks} asyncio tasks, {trace.tasks_baseline_max} before")
    if trace.name != "rig" and end.children:
        out.append(f"{trace.name}: {end.children} child processes left")
    return out


@dataclass
class Watched:
    """What the soak hears on the broker."""

    done: list[dict[str, Any]] = field(default_factory=list)  #: pass_complete bodies
    tasks: dict[str, int] = field(default_factory=dict)  #: station -> asyncio tasks
    #: station -> (retained ``state/pass`` state, wall time it took that state)
    pass_state: dict[str, tuple[str, float]] = field(default_factory=dict)

    def not_idle(self, now: float) -> list[str]:
        """The stations whose pass state has not been IDLE for :data:`SETTLE_WALL_S`."""
        out = []
        for station in STATIONS:
            state, since = self.pass_state.get(station, ("unknown", now))
            if state != "IDLE" or now - since < SETTLE_WALL_S:
                out.append(f"{station} ({state})")
        return out


async def _watch(port: int, seen: Watched) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="reliability-soak") as client:
        await client.subscribe("qgs/v1/+/event/pass_complete", qos=1)
        await client.subscribe("qgs/v1/+/telemetry/process", qos=0)
        await client.subscribe("qgs/v1/+/state/pass", qos=1)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                body = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(body, dict):
                continue
            station = str(message.topic).split("/")[2]
            if str(message.topic).endswith("pass_complete"):
                seen.done.append({"station": station, **body})
            elif str(message.topic).endswith("state/pass"):
                state = str(body.get("state"))
                if seen.pass_state.get(station, ("", 0.0))[0] != state:
                    seen.pass_state[station] = (state, time.time())
            elif isinstance(body.get("asyncio_tasks"), int):
                seen.tasks[station] = body["asyncio_tasks"]


async def run_soak(
    tmp: Path, port: int, hours: float = 24.0, rate: float = RATE, start: str = START
) -> Soak:
    """Two daemons on the rig for ``hours`` of clock time at ``rate`` from ``start`` (UTC)."""
    result = Soak(hours, rate)
    t0 = time.monotonic()
    rig, spec, _ = start_rig(tmp, RIG_CONFIG, rate, start)
    daemons: dict[str, Any] = {}
    seen = Watched()
    done = seen.done
    watcher = asyncio.create_task(_watch(port, seen))
    traces = {name: ProcessTrace(name) for name in (*STATIONS, "rig")}
    try:
        for n, name in enumerate(STATIONS, start=1):
            config = tmp / f"{name}.toml"
            shipped = ROOT / f"configs/stations/{name}.toml"
            config.write_text(shipped.read_text() + SOAK_WATCHDOG)
            daemons[name] = start_daemon(tmp, port, config, n)
        await asyncio.sleep(5.0)
        await _enable(port, spec.epoch, spec.anchor, spec.rate)
        end_clock = spec.epoch + hours * 3600.0
        pids = {**{n: p.pid for n, p in daemons.items()}, "rig": rig.pid}
        past_end: float | None = None
        last = False
        while not last:
            now = time.time()
            clock = spec.epoch + (now - spec.anchor) * spec.rate
            if clock >= end_clock:  # past the end: on until both stations are idle
                past_end = past_end or now
                busy = seen.not_idle(now)
                last = not busy or now - past_end > IDLE_WAIT_S  # this sample is the end one
                if busy and last:
                    result.problems.append(
                        f"not idle {IDLE_WAIT_S:.0f} wall s after the end: {', '.join(busy)}"
                    )
            for name, pid in pids.items():
                s = sample(pid, clock)
                if s is None:
                    result.problems.append(f"{name} exited at clock {clock - spec.epoch:.0f} s")
                    return result
                s.tasks = seen.tasks.get(name)
                traces[name].samples.append(s)
            for station in STATIONS:
                first = next((d for d in done if d["station"] == station), None)
                if first is not None and traces[station].baseline_from_clock is None:
                    traces[station].baseline_from_clock = clock
            if not last:
                await asyncio.sleep(SAMPLE_S)
        result.idle_wait_s = round(now - (past_end or now), 1)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        for proc in daemons.values():
            stop(proc, 30.0)
        stop(rig)
        result.wall_s = round(time.monotonic() - t0, 1)
        result.log_errors = _log_errors(tmp, len(STATIONS))
    starts = [t.baseline_from_clock for t in traces.values() if t.baseline_from_clock]
    traces["rig"].baseline_from_clock = min(starts, default=None)
    for trace in traces.values():
        result.problems += summarize(trace)
        trace.samples = trace.samples[:: max(1, len(trace.samples) // 60)]  # keep ~60
    result.traces = list(traces.values())
    for d in done:
        result.passes[d["station"]] = result.passes.get(d["station"], 0) + 1
        key = f"{d['station']} {d.get('outcome')}"
        result.outcomes[key] = result.outcomes.get(key, 0) + 1
        bundle = d.get("bundle")
        verified = bool(bundle) and verify_bundle(str(bundle)).ok
        result.pass_log.append(
            {
                "station": d["station"],
                "pass_id": d.get("pass_id"),
                "outcome": d.get("outcome"),
                "reason": d.get("reason"),
                "events": d.get("events"),
                "verified": verified if bundle else None,
            }
        )
        if not bundle:
            continue
        if verified:
            result.bundles_verified += 1
        else:
            result.bundles_failed.append(str(bundle))
    if result.bundles_failed:
        result.problems.append(f"{len(result.bundles_failed)} bundles do not verify")
    if not done:
        result.problems.append("no pass completed")
    elif not any(d.get("outcome") == "complete" for d in done):
        result.problems.append("no pass ended complete (every one aborted or refused)")
    if result.log_errors:
        result.problems.append(f"{len(result.log_errors)} unhandled exceptions in daemon logs")
    result.passed = not result.problems
    return result


def _log_errors(tmp: Path, daemons: int) -> list[str]:
    """Unhandled exceptions the daemons logged (each: the line and the last frame)."""
    out: list[str] = []
    for n in range(1, daemons + 1):
        path = tmp / f"daemon{n}.err"
        if not path.exists():
            continue
        lines = path.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if "Traceback (most recent call last)" in line or "never retrieved" in line:
                tail = next((x for x in lines[i + 1 : i + 40] if x and not x[0].isspace()), "")
                out.append(f"daemon{n}: {line.strip()[:120]} ... {tail.strip()[:200]}")
    return out


async def _enable(port: int, epoch: float, anchor: float, rate: float) -> None:
    async with Requester(
        BrokerConfig(port=port), WarpClock(epoch, anchor, rate), client_id="reliability-soak-op"
    ) as req:
        for station in STATIONS:
            for _ in range(20):  # the daemon may still be connecting its devices
                try:
                    acks = await req.send(station, "enable", timeout_s=5.0)
                except CommandTimeout:
                    continue
                if acks and acks[-1].ack is Ack.COMPLETE:
                    break
                await asyncio.sleep(1.0)
            else:
                raise RuntimeError(f"{station}: enable never completed")
