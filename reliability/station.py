"""One station on the rig, as real processes: the rig, the daemon, an operator, a watcher.

The pattern of tests/integration/station/test_daemon_pass.py outside pytest: the rig
(``python -m sim_hardware``) on a warped clock, the daemon (``qgs station run``) on the rig's
URLs and a given broker, an operator :class:`Requester`, and a watcher that keeps every
message the station publishes with the wall time it arrived. Every process is stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import zmq
import zmq.asyncio

from drivers.clock import SystemClock, WarpSpec
from reliability.broker import ROOT, stop
from station import processes
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack
from station.bus.requester import Requester
from station.tracking.elements import parse_time

RIG_CONFIG = ROOT / "configs/rig/delingha_lijiang.toml"
STATION_CONFIG = ROOT / "configs/stations/delingha.toml"
TLE = ROOT / "configs/satellites/micius-2021.tle"
STATION = "delingha"
START_UTC = "2021-04-29T17:16:00Z"  #: ~4 min before Delingha's AOS (17:19:51) in the rig world
RIG_START_BOUND_S = 30.0  #: wall s for the rig to write its URL file
ONLINE_BOUND_S = 20.0  #: wall s for a (re)started daemon to publish status STANDBY


@dataclass
class Seen:
    """One message the station published: wall arrival time, topic below the station, body."""

    wall: float
    topic: str
    body: dict[str, Any]


@dataclass
class Run:
    """A running rig + daemon for one station and everything the station published."""

    tmp: Path
    spec: WarpSpec
    urls: dict[str, Any]
    broker_port: int
    station_config: Path
    rig: subprocess.Popen[bytes]
    daemon: subprocess.Popen[bytes]
    req: Requester
    seen: list[Seen] = field(default_factory=list)
    daemon_starts: int = 1

    def clock_at(self, wall: float) -> float:
        """The warped clock's time (POSIX s) at a wall time."""
        return self.spec.epoch + (wall - self.spec.anchor) * self.spec.rate

    def bodies(self, topic: str) -> list[dict[str, Any]]:
        return [s.body for s in self.seen if s.topic == topic]

    def summary(self) -> str | None:
        states = [b for b in self.bodies("status") if b.get("state") == "online"]
        return str(states[-1].get("summary")) if states else None

    def pass_states(self) -> list[str]:
        return [str(b["to"]) for b in self.bodies("event/pass_state")]

    def pass_complete(self) -> dict[str, Any] | None:
        done = self.bodies("event/pass_complete")
        return done[-1] if done else None

    async def until(self, cond: Callable[[], bool], bound_s: float) -> bool:
        """Wait (bounded, wall seconds) for ``cond``; False when the bound went by."""
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            if cond():
                return True
            await asyncio.sleep(0.05)
        return cond()

    def daemon_log_tail(self, n: int = 1500) -> str:
        path = self.tmp / f"daemon{self.daemon_starts}.err"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    async def book_first_pass_and_enable(self) -> None:
        schedule = await self.req.send(STATION, "get_schedule")
        result = schedule[-1].result or {}
        passes = result.get("passes") or []
        if not passes:
            raise RuntimeError("the daemon predicted no pass")
        booked = await self.req.send(STATION, "schedule_pass", {"aos_utc": passes[0]["aos_utc"]})
        if booked[-1].ack is not Ack.COMPLETE:
            raise RuntimeError(f"schedule_pass: {booked[-1].reason}")
        await self.enable()

    async def enable(self) -> None:
        enabled = await self.req.send(STATION, "enable")
        if enabled[-1].ack is not Ack.COMPLETE:
            raise RuntimeError(f"enable: {enabled[-1].reason}")

    def kill_daemon(self) -> float:
        """SIGKILL the daemon; returns the wall time of the kill."""
        wall = time.time()
        if self.daemon.poll() is None:
            os.kill(self.daemon.pid, signal.SIGKILL)
            self.daemon.wait(timeout=10)
        return wall

    def restart_daemon(self) -> None:
        self.daemon_starts += 1
        self.daemon = start_daemon(
            self.tmp, self.broker_port, self.station_config, self.daemon_starts
        )


def start_rig(
    tmp: Path, rig_config: Path, rate: float, start_utc: str = START_UTC
) -> tuple[subprocess.Popen[bytes], WarpSpec, dict[str, Any]]:
    """The rig on a warped clock from ``start_utc`` (station/processes.py)."""
    tmp.mkdir(parents=True, exist_ok=True)
    spec = WarpSpec(epoch=parse_time(start_utc), anchor=time.time() + 2.0, rate=rate)
    proc, urls = processes.start_rig(
        rig_config, spec, tmp / "urls.json", tmp / "rig.err", bound_s=RIG_START_BOUND_S
    )
    return proc, spec, urls


def start_daemon(tmp: Path, port: int, config: Path, n: int = 1) -> subprocess.Popen[bytes]:
    """A daemon on the rig's URLs and the broker at ``port``; its log is ``daemon<n>.err``."""
    return processes.start_station(
        config,
        tmp / "urls.json",
        TLE,
        f"mqtt://127.0.0.1:{port}",
        tmp / "data",
        tmp / f"daemon{n}.err",
    )


async def _watch(port: int, seen: list[Seen], ready: asyncio.Event) -> None:
    prefix = f"qgs/v1/{STATION}/"
    async with aiomqtt.Client("127.0.0.1", port, identifier="reliability-watch") as client:
        await client.subscribe(f"{prefix}#", qos=1)
        ready.set()
        async for message in client.messages:
            topic = str(message.topic).removeprefix(prefix)
            if topic.startswith("telemetry/"):
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                body = json.loads(payload) if payload else {}
            except ValueError:
                body = {"unparsed": payload[:200].decode(errors="replace")}
            seen.append(Seen(time.time(), topic, body if isinstance(body, dict) else {}))


@contextlib.asynccontextmanager
async def station_run(
    tmp: Path,
    broker_port: int,
    *,
    rig_config: Path = RIG_CONFIG,
    station_config: Path = STATION_CONFIG,
    rate: float = 20.0,
    start_utc: str = START_UTC,
) -> AsyncIterator[Run]:
    """Rig and daemon processes (stopped by PID on exit), watched until STANDBY."""
    rig, spec, urls = start_rig(tmp, rig_config, rate, start_utc)
    daemon: subprocess.Popen[bytes] | None = None
    run: Run | None = None
    try:
        daemon = start_daemon(tmp, broker_port, station_config)
        seen: list[Seen] = []
        ready = asyncio.Event()
        watcher = asyncio.create_task(_watch(broker_port, seen, ready))
        try:
            await asyncio.wait_for(ready.wait(), 10.0)
            async with Requester(
                BrokerConfig(port=broker_port), SystemClock(), client_id="reliability-operator"
            ) as req:
                run = Run(tmp, spec, urls, broker_port, station_config, rig, daemon, req, seen)
                if not await run.until(
                    lambda: run is not None and run.summary() == "STANDBY", ONLINE_BOUND_S
                ):
                    raise RuntimeError(f"daemon not STANDBY: {run.daemon_log_tail()}")
                yield run
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    finally:
        if run is not None:
            daemon = run.daemon
        if daemon is not None:
            stop(daemon, 30.0)
        stop(rig)


def with_tagger_extensions(text: str) -> str:
    """A rig config text whose Delingha tagger answers the qgs ``list``/``status`` DLT
    extensions (sim_hardware/servers/idq.py), so the harness can ask what it sent."""
    head = f"[devices.{STATION}.timetagger]"
    start = text.index(head)
    eol = text.index("\n", start)
    return text[: eol + 1] + "extensions = true\n" + text[eol + 1 :]


async def tagger_streamed(url: str) -> int | None:
    """Timestamps the emulated tagger says it sent, summed over its acquisitions (the DLT
    ``status`` extension, asked over raw zmq, not through our driver); None if
    it does not answer (extensions off, or the tagger is hung)."""
    if "dlt=" not in url:
        return None
    dlt_port = int(url.rsplit("dlt=", 1)[1].split("&")[0])
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{dlt_port}")
    try:
        total = 0
        for stream_id in range(1, 17):  # ids count from 1; the tagger keeps 16 stopped ones
            await sock.send_string(f"status --id {stream_id}")
            status = json.loads(await asyncio.wait_for(sock.recv_string(), 5.0))
            if "error" in status:
                if stream_id == 1:
                    return None
                break
            total += int(status["timestamps_count"])
        return total
    except (TimeoutError, ValueError, KeyError, zmq.ZMQError):
        return None
    finally:
        sock.close()
        ctx.term()
