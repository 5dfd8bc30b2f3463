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
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import zmq
import zmq.asyncio

from drivers.clock import SystemClock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack
from station.bus.requester import Requester
from station.tracking.elements import parse_time
from tests.conftest import Broker, stop_process
from tests.integration.rig.rawrig import with_idq_extensions

ROOT = Path(__file__).resolve().parents[3]
RIG_CONFIG = ROOT / "configs/rig/delingha_lijiang.toml"
STATION = "delingha"
START_UTC = "2021-04-29T17:16:00Z"  # ~4 min before Delingha's AOS (17:19:51) in the rig world
RATE = 20.0  # clock seconds per wall second
WALL_BOUND_S = 90.0


def _log(path: Path) -> int:
    """A file descriptor for a child's output; the child keeps its copy, we close ours."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    _FDS.append(fd)
    return fd


_FDS: list[int] = []


@pytest.fixture(autouse=True)
def _close_logs() -> Iterator[None]:
    yield
    while _FDS:
        os.close(_FDS.pop())


def _start_rig(
    tmp: Path, config: Path = RIG_CONFIG
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    urls = tmp / "urls.json"
    anchor = time.time() + 2.0
    clock = f"epoch={parse_time(START_UTC)},anchor={anchor},rate={RATE}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim_hardware",
            "--config",
            str(config),
            "--urls-json",
            str(urls),
            "--clock",
            clock,
        ],
        stdout=subprocess.DEVNULL,
        stderr=_log(tmp / "rig.err"),
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20.0
    while not urls.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail(f"rig did not start: {(tmp / 'rig.err').read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, json.loads(urls.read_text())


def _start_daemon(tmp: Path, broker: Broker) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "station.cli",
            "--log-level",
            "INFO",
            "station",
            "run",
            "--config",
            str(ROOT / "configs/stations/delingha.toml"),
            "--devices-json",
            str(tmp / "urls.json"),
            "--tle",
            str(ROOT / "configs/satellites/micius-2021.tle"),
            "--broker",
            f"mqtt://127.0.0.1:{broker.port}",
            "--data-dir",
            str(tmp / "data"),
        ],
        stdout=_log(tmp / "daemon.out"),
        stderr=_log(tmp / "daemon.err"),
        cwd=ROOT,
    )


async def _tagger_streamed(url: str) -> int:
    """Timestamps the emulated tagger says it sent (DataLinkTarget ``status`` of the stopped
    acquisitions), asked over raw zmq, not through our driver."""
    dlt_port = int(url.rsplit("dlt=", 1)[1].split("&")[0])
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{dlt_port}")
    try:
        total = 0
        # one stream per enabled input (documented protocol), ids from 1, all stopped by now
        for stream_id in range(1, 65):
            await sock.send_string(f"status --id {stream_id}")
            status = json.loads(await asyncio.wait_for(sock.recv_string(), 5.0))
            if "error" in status:
                break
            assert status["state"] == "stopped"
            total += int(status["timestamps_count"])
        return total
    finally:
        sock.close()
        ctx.term()


async def _collect(
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
    broker: Broker, tmp: Path, rig_config: Path = RIG_CONFIG
) -> AsyncIterator[Session]:
    """Rig and daemon processes (stopped by PID), watched until the daemon is STANDBY."""
    # `status --id` (to count what the tagger sent) is a qgs extension of the IDQ emulator
    rig, urls = _start_rig(tmp, with_idq_extensions(rig_config, tmp))
    daemon = _start_daemon(tmp, broker)
    try:
        async with Requester(
            BrokerConfig(port=broker.port), SystemClock(), client_id="operator-test"
        ) as req:
            session = Session(tmp, req, urls)
            watcher = asyncio.create_task(_collect(broker, session.seen, session.done))
            try:
                await session.until(lambda: session.summary() == "STANDBY", 10.0)
                yield session
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
    finally:
        stop_process(daemon)
        stop_process(rig)


def _verify(bundle: str) -> None:
    verify = subprocess.run(
        [sys.executable, "-m", "station.cli", "bundle", "verify", bundle],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()


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
        streamed = await _tagger_streamed(st.urls[STATION]["timetagger"])

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
    _verify(summary["bundle"])


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
    _verify(summary["bundle"])


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
