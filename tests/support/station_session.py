"""One station on the rig for integration tests: the rig, the daemon, an operator, a watcher.

Processes: the rig (``python -m sim_hardware``, world + wire-level emulators) and the daemon
(``qgs station run``) on a Mosquitto the test provides, all on loopback, stopped by PID. The
rig and the daemon share one warped timeline (the rig's ``_clock`` in its URL file).
:func:`station_session` yields a :class:`Session` once the daemon is STANDBY; it keeps every
message the station publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from drivers.clock import SystemClock, WarpSpec
from reliability import station as reliability_station
from station import processes
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack
from station.bus.requester import Requester
from station.tracking.elements import parse_time
from tests.conftest import Broker, stop_process
from tests.integration.rig.rawrig import with_idq_extensions

ROOT = Path(__file__).resolve().parents[2]
RIG_CONFIG = ROOT / "configs/rig/delingha_lijiang.toml"
STATION_CONFIG = ROOT / "configs/stations/delingha.toml"
STATION = "delingha"
START_UTC = "2021-04-29T17:16:00Z"  # ~4 min before Delingha's AOS (17:19:51) in the rig world
RATE = 20.0  # clock seconds per wall second
WALL_BOUND_S = 90.0


def start_rig(
    tmp: Path, config: Path = RIG_CONFIG, start_utc: str = START_UTC
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The rig from ``start_utc`` at ``RATE`` (station/processes.py), its log ``rig.err``."""
    spec = WarpSpec(epoch=parse_time(start_utc), anchor=time.time() + 2.0, rate=RATE)
    try:
        return processes.start_rig(config, spec, tmp / "urls.json", tmp / "rig.err")
    except processes.RigStartError as exc:
        pytest.fail(str(exc))


def start_daemon(
    tmp: Path, broker: Broker, station_config: Path = STATION_CONFIG
) -> subprocess.Popen[bytes]:
    """``qgs station run`` on the rig's URL file (``tmp/urls.json``) and ``broker``."""
    return processes.start_station(
        station_config,
        tmp / "urls.json",
        ROOT / "configs/satellites/micius-2021.tle",
        f"mqtt://127.0.0.1:{broker.port}",
        tmp / "data",
        tmp / "daemon.err",
    )


async def tagger_streamed(url: str) -> int:
    """Timestamps the emulated tagger says it sent (DataLinkTarget ``status`` of its
    acquisitions, a qgs extension), asked over raw zmq, not through our driver."""
    total = await reliability_station.tagger_streamed(url)
    assert total is not None, f"{url}: the tagger does not answer DLT status (extensions off?)"
    return total


async def collect(
    broker: Broker, seen: list[tuple[str, dict[str, Any]]], done: asyncio.Event
) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="test-watch") as client:
        await client.subscribe(f"qgs/v1/{STATION}/#", qos=1)
        async for message in client.messages:
            topic = str(message.topic).split(f"qgs/v1/{STATION}/", 1)[1]
            if topic.startswith("live/"):
                continue  # the live classical channel is binary (docs/analysis.md), not JSON
            payload = message.payload if isinstance(message.payload, bytes) else b"{}"
            body = json.loads(payload) if payload else {}
            seen.append((topic, body))
            if topic == "event/pass_complete":
                done.set()


@dataclass
class Session:
    """A running rig + daemon, an operator's requester and every message the station sent."""

    tmp: Path
    req: Requester
    urls: dict[str, Any]
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> str | None:
        states = [b.get("summary") for t, b in self.seen if t == "status"]
        return states[-1] if states else None

    def pass_states(self) -> list[str]:
        return [str(b["to"]) for t, b in self.seen if t == "event/pass_state"]

    def pass_complete(self) -> dict[str, Any]:
        return next(b for t, b in self.seen if t == "event/pass_complete")

    async def until(self, cond: Any, timeout_s: float) -> None:
        for _ in range(int(timeout_s / 0.1)):
            if cond():
                return
            await asyncio.sleep(0.1)
        log = (self.tmp / "daemon.err").read_text()[-3000:]
        pytest.fail(f"condition not reached in {timeout_s} s: {log}")

    async def book_first_pass_and_enable(self) -> None:
        schedule = await self.req.send(STATION, "get_schedule")
        assert schedule[-1].result is not None
        passes = schedule[-1].result["passes"]
        assert passes, "the daemon predicted no pass from the shipped 2021 TLE"
        booked = await self.req.send(STATION, "schedule_pass", {"aos_utc": passes[0]["aos_utc"]})
        assert [r.ack for r in booked] == [Ack.ACK, Ack.COMPLETE]
        assert (await self.req.send(STATION, "enable"))[-1].ack is Ack.COMPLETE


@contextlib.asynccontextmanager
async def station_session(
    broker: Broker,
    tmp: Path,
    rig_config: Path = RIG_CONFIG,
    station_config: Path = STATION_CONFIG,
    start_utc: str = START_UTC,
) -> AsyncIterator[Session]:
    """Rig and daemon processes (stopped by PID), watched until the daemon is STANDBY."""
    # `status --id` (to count what the tagger sent) is a qgs extension of the IDQ emulator
    rig, urls = start_rig(tmp, with_idq_extensions(rig_config, tmp), start_utc)
    daemon = start_daemon(tmp, broker, station_config)
    try:
        async with Requester(
            BrokerConfig(port=broker.port), SystemClock(), client_id="operator-test"
        ) as req:
            session = Session(tmp, req, urls)
            watcher = asyncio.create_task(collect(broker, session.seen, session.done))
            try:
                await session.until(lambda: session.summary() == "STANDBY", 10.0)
                yield session
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
    finally:
        stop_process(daemon)
        stop_process(rig)


def verify_with_cli(bundle: str) -> None:
    """``qgs bundle verify`` must pass on ``bundle``."""
    verify = subprocess.run(
        [sys.executable, "-m", "station.cli", "bundle", "verify", bundle],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()
