"""Two station daemons record one warped common pass on the rig; `qgs analyze` reads it.

Processes (all loopback, stopped by PID): a real Mosquitto (fixture), the rig
(`python -m sim_hardware`: world + wire-level emulators) and one `qgs station run` per
station. A coordinator's `book_window` on each daemon books the rig world's common window;
both pre-position, track, home and drive their plates, record and stow. The two bundles then
go through `qgs analyze` (a subprocess, as an operator runs it) and the figures are held
against the world: the clock offsets and drifts the rig was configured with, the closed-form
coincidences with the logged pointing, the QBER of the source visibility and the accidentals
(key mode), and a CHSH violation at the closed-form S (Bell mode, Lijiang's plate +11.25 deg,
with the 2020 receivers of physics.md: 3 dB better per link, so ~4x the pairs).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest

from drivers.clock import SystemClock, WarpSpec
from drivers.config import load_toml
from drivers.datatypes import AltAz
from sim_hardware.world import World, load_world_config
from sim_hardware.world.closedform import expect_pass
from station import processes
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack
from station.bus.requester import Requester
from station.tracking.elements import parse_time
from tests.conftest import Broker, stop_process

ROOT = Path(__file__).resolve().parents[3]
RIG_CONFIG = ROOT / "configs/rig/delingha_lijiang.toml"
TLE = ROOT / "configs/satellites/micius-2021.tle"
STATIONS = ("delingha", "lijiang")
START_UTC = "2021-04-29T17:16:00Z"
WINDOW = ("2021-04-29T17:22:31Z", "2021-04-29T17:27:06Z")  #: the rig world's common window
RATE = 12.0
WALL_BOUND_S = 150.0


def _rig_config(tmp: Path, *, upgraded: bool) -> Path:
    text = RIG_CONFIG.read_text()
    if upgraded:  # Yin 2020 receivers: 3 dB better collection per link (physics.md §1)
        text = text.replace("optics_loss_db = 14.6", "optics_loss_db = 11.6")
    path = tmp / "rig.toml"
    path.write_text(text)
    return path


def _station_config(tmp: Path, name: str, mode: str) -> Path:
    """The shipped station file plus the campaign's analyzer mode (Bell: Lijiang turns)."""
    text = (ROOT / "configs/stations" / f"{name}.toml").read_text()
    bell = 11.25 if name == "lijiang" else 0.0
    text += f'\n[analyzer]\nmode = "{mode}"\nbell_offset_deg = {bell}\n'
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def _start(tmp: Path, broker: Broker, mode: str) -> list[subprocess.Popen[bytes]]:
    urls = tmp / "urls.json"
    spec = WarpSpec(epoch=parse_time(START_UTC), anchor=time.time() + 3.0, rate=RATE)
    rig_config = _rig_config(tmp, upgraded=mode == "bell")
    try:
        rig, _ = processes.start_rig(rig_config, spec, urls, tmp / "rig.err", bound_s=20.0)
    except processes.RigStartError as exc:
        pytest.fail(str(exc))
    procs = [rig]
    for name in STATIONS:
        procs.append(
            processes.start_station(
                _station_config(tmp, name, mode),
                urls,
                TLE,
                f"mqtt://127.0.0.1:{broker.port}",
                tmp / "data",
                tmp / f"{name}.err",
            )
        )
    return procs


async def _watch(broker: Broker, done: dict[str, dict[str, Any]], status: dict[str, str]) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="test-two") as client:
        await client.subscribe("qgs/v1/+/status", qos=1)
        await client.subscribe("qgs/v1/+/event/pass_complete", qos=1)
        async for message in client.messages:
            station = str(message.topic).split("/")[2]
            payload = message.payload if isinstance(message.payload, bytes) else b"{}"
            body = json.loads(payload) if payload else {}
            if str(message.topic).endswith("pass_complete"):
                done[station] = body
            else:
                status[station] = str(body.get("summary"))


async def _run_pass(broker: Broker, tmp: Path, mode: str) -> dict[str, dict[str, Any]]:
    procs = _start(tmp, broker, mode)
    done: dict[str, dict[str, Any]] = {}
    status: dict[str, str] = {}
    try:
        watcher = asyncio.create_task(_watch(broker, done, status))
        try:
            async with Requester(
                BrokerConfig(port=broker.port), SystemClock(), client_id="test-coordinator"
            ) as req:
                for _ in range(200):
                    if all(status.get(n) == "STANDBY" for n in STATIONS):
                        break
                    await asyncio.sleep(0.1)
                for name in STATIONS:
                    peer = next(x for x in STATIONS if x != name)
                    args = {
                        "start_utc": WINDOW[0],
                        "end_utc": WINDOW[1],
                        "campaign": "test",
                        "peer": peer,
                    }
                    booked = await req.send(name, "book_window", args, timeout_s=15.0)
                    assert booked[-1].ack is Ack.COMPLETE, booked[-1].reason
                    enabled = await req.send(name, "enable", timeout_s=15.0)
                    assert enabled[-1].ack is Ack.COMPLETE, enabled[-1].reason
                for _ in range(int(WALL_BOUND_S / 0.2)):
                    if len(done) == 2:
                        break
                    await asyncio.sleep(0.2)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    finally:
        for p in reversed(procs):
            stop_process(p)
    if len(done) != 2:
        logs = {n: (tmp / f"{n}.err").read_text()[-1500:] for n in STATIONS}
        pytest.fail(f"both passes did not complete within {WALL_BOUND_S} s: {done} {logs}")
    for body in done.values():
        assert body["outcome"] == "complete", body
    return done


def _analyze(tmp: Path, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = tmp / "analysis.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "station.cli",
            "analyze",
            done["delingha"]["bundle"],
            done["lijiang"]["bundle"],
            "--json",
            str(out),
            "--report",
            str(tmp / "report.png"),
        ],
        capture_output=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    doc: dict[str, Any] = json.loads(out.read_text())
    assert (tmp / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return doc


def _logged_pointing(bundle: str) -> Any:
    with open(Path(bundle) / "pointing.csv") as f:
        rows = list(csv.DictReader(f))
    t = np.array([float(r["t_s"]) for r in rows])
    az = np.array([float(r["act_az_deg"]) for r in rows])
    el = np.array([float(r["act_el_deg"]) for r in rows])
    return lambda tt: AltAz(float(np.interp(tt, t, az)), float(np.interp(tt, t, el)))


def _clock_truth(world: World, name: str, t: float) -> float:
    """The world's tagger clock error (ps) at POSIX t, without the random walk."""
    st = next(s for s in world.config.stations if s.name == name)
    return (
        st.clock.offset_ns * 1e3
        + st.clock.frequency_ppb * 1e-9 * (t - world.config.tagger_epoch) * 1e12
    )


def _check_common(
    doc: dict[str, Any], tmp: Path, done: dict[str, dict[str, Any]], world: World
) -> tuple[dict[str, Any], Any]:
    pair = doc["pairs"][0]
    assert not pair["partial"], pair.get("partial_reasons")
    # the time base: each station's PPS fit recovers its configured drift, and the clock
    # error it implies at the pass matches the configured offset (± the random walk)
    t_mid = 0.5 * sum(pair["overlap_posix"])
    for timing, name in zip(pair["timing"], STATIONS, strict=True):
        st = next(s for s in world.config.stations if s.name == name)
        assert timing["method"] == "pps"
        freq = timing["frequency_ppb"] * 1e-9
        assert freq == pytest.approx(st.clock.frequency_ppb * 1e-9, abs=3e-10)
        # offset_ps is the tagger's reading at UTC ref_posix_s: reading = (t − epoch) + error
        ref = timing["ref_posix_s"]
        fitted = timing["offset_ps"] - (ref - world.config.tagger_epoch) * 1e12
        fitted += freq * (t_mid - ref) * 1e12
        walk = st.clock.random_walk_ps_per_sqrt_s * math.sqrt(t_mid - world.config.tagger_epoch)
        assert fitted == pytest.approx(_clock_truth(world, name, t_mid), abs=4 * walk + 2000)
    for name in STATIONS:
        bundle = Path(done[name]["bundle"])
        manifest = json.loads((bundle / "manifest.json").read_text())
        # the bundle says what event time 0 is: the tagger's epoch, pinned by the PPS
        ts = manifest["timescale"]
        assert ts["anchor"]["source"] == "pps"
        assert ts["tagger_epoch_posix"] == pytest.approx(world.config.tagger_epoch, abs=1e-3)
        assert "quality" in manifest
        # the recorded plate follows the world's frame (mod 90 deg for linear analysis), plus
        # the Bell-mode plate offset the manifest records
        plate_offset = manifest["analyzer"]["plate_offset_deg"]
        with open(bundle / "waveplate.csv") as f:
            rows = list(csv.DictReader(f))
        diffs = []
        for row in rows[::10]:
            truth = world.truth(name, float(row["t_s"]))
            if truth["el_deg"] > 10.0:
                d = float(row["actual_deg"]) - truth["hwp_compensation_deg"] - plate_offset
                diffs.append((d + 45.0) % 90.0 - 45.0)
        assert len(diffs) > 10
        assert float(np.sqrt(np.mean(np.square(diffs)))) < 0.2, diffs
    # after PPS and the orbit prior the two stations agree to the models' difference
    assert abs(pair["offset_search"]["offset_ps"]) < 300.0, pair["offset_search"]
    t0, t1 = pair["overlap_posix"]
    pointing = (
        _logged_pointing(done["delingha"]["bundle"]),
        _logged_pointing(done["lijiang"]["bundle"]),
    )
    exp = expect_pass(
        world, t0, t1, window_ps=pair["window_ps"], timing_noise_ps=60.0, pointing=pointing
    )
    ideal = expect_pass(world, t0, t1, window_ps=pair["window_ps"], timing_noise_ps=60.0)
    n = pair["coincidences"]
    assert abs(n - exp.total) < 3.0 * math.sqrt(exp.total) + 0.03 * exp.total, (n, exp.total)
    assert n >= 0.8 * ideal.total, (n, ideal.total)
    return pair, exp


@pytest.mark.mosquitto
async def test_key_mode_pass_gives_the_closed_form_qber(mosquitto: Broker, tmp_path: Path) -> None:
    done = await _run_pass(mosquitto, tmp_path, "key")
    world = World(load_world_config(load_toml(RIG_CONFIG)), seed=1)
    doc = _analyze(tmp_path, done)
    pair, exp = _check_common(doc, tmp_path, done, world)
    q = pair["qber"]["raw"]
    assert q["qber"] == pytest.approx(exp.qber, abs=3.0 * q["sigma_qber"] + 0.01), (q, exp.qber)


@pytest.mark.mosquitto
async def test_bell_mode_pass_violates_chsh(mosquitto: Broker, tmp_path: Path) -> None:
    done = await _run_pass(mosquitto, tmp_path, "bell")
    world = World(load_world_config(load_toml(_rig_config(tmp_path, upgraded=True))), seed=1)
    doc = _analyze(tmp_path, done)
    pair, exp = _check_common(doc, tmp_path, done, world)
    s = pair["chsh"]["raw"]
    assert s["violation_sigma"] > 3.0, s
    assert abs(s["s"]) == pytest.approx(exp.s_value, abs=3.0 * s["sigma_s"] + 0.03), (
        s,
        exp.s_value,
    )
