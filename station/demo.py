"""`qgs demo`: a two-station Micius pass on the emulated rig, end to end, on embedded defaults.

What runs (all on loopback, all stopped on exit):

1. an embedded MQTT broker (Mosquitto when installed, else amqtt);
2. the rig as its own process (`python -m sim_hardware`): the physics world with the
   satellite, link, source, detectors and clocks, and wire-level emulators of every
   device (rotctld mounts, Elliptec waveplates, IDQ time taggers) — a test bench;
3. a station daemon per station (Delingha, Lijiang) speaking to its emulators through the
   real drivers, on the rig's warped clock;
4. a coordinator step over MQTT: the common-visibility window of both stations is booked on
   each (``book_window``) and both are ENABLED.

Each station pre-positions, tracks, compensates its polarization frame, records, stows; the
demo prints each pass summary and the ``bundle verify`` verdict, then runs ``qgs analyze`` on
the two bundles (clock offset, coincidences, QBER, key budget; JSON and a PNG report in
``--out``). Bundles stay in ``--out`` (default ``demo-output/``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drivers.clock import WarpClock, WarpSpec
from drivers.errors import ConfigError, DeviceError
from station.bus.connection import BrokerConfig
from station.bus.embedded import BrokerUnavailable, EmbeddedBroker
from station.bus.requester import Requester
from station.config import StationConfig, load_station_config
from station.daemon.commands import apply_devices_json, load_station_elements
from station.daemon.controller import StationController
from station.recording import verify_bundle
from station.tracking.elements import iso, parse_time
from station.tracking.passes import common_windows, find_passes

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RIG_CONFIG = ROOT / "configs/rig/delingha_lijiang.toml"
TLE = ROOT / "configs/satellites/micius-2021.tle"
STATIONS = ("delingha", "lijiang")
START_UTC = "2021-04-29T17:16:00Z"  #: the rig world's night: AOS Delingha 17:19:51


def _start_rig(out: Path, spec: WarpSpec) -> tuple[subprocess.Popen[bytes], Path]:
    urls = out / "urls.json"
    urls.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "sim_hardware", "--config", str(RIG_CONFIG)),
            *("--urls-json", str(urls), "--clock", spec.to_string()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(out / "rig.log").open("wb"),
    )
    deadline = time.monotonic() + 30.0
    while not urls.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            tail = (out / "rig.log").read_text()[-1500:]
            raise DeviceError(f"the rig did not start (see {out / 'rig.log'}):\n{tail}")
        time.sleep(0.1)
    return proc, urls


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _station(name: str, urls: Path, out: Path) -> StationConfig:
    cfg = load_station_config(ROOT / "configs/stations" / f"{name}.toml")
    cfg, _ = apply_devices_json(cfg, urls)
    d = cfg.daemon
    daemon = dataclasses.replace(
        d,
        recording=dataclasses.replace(d.recording, data_dir=out / "bundles"),
        # the coordinator books the common window; nothing else is taken
        schedule=dataclasses.replace(d.schedule, auto=False, horizon_days=0.1),
    )
    return dataclasses.replace(cfg, daemon=daemon)


async def _demo(args: argparse.Namespace, out: Path) -> int:
    start = parse_time(START_UTC)
    spec = WarpSpec(epoch=start, anchor=time.time() + 3.0, rate=args.rate)
    clock = WarpClock.from_spec(spec)
    print(f"qgs demo: rig world {START_UTC} at {args.rate:g}x; output in {out}", flush=True)
    rig, urls = _start_rig(out, spec)
    try:
        async with EmbeddedBroker() as broker:
            print(f"  broker: mqtt://127.0.0.1:{broker.port} (MQTT {broker.protocol})", flush=True)
            return await _run_stations(args, out, urls, clock, broker)
    finally:
        _stop(rig)


async def _run_stations(
    args: argparse.Namespace, out: Path, urls: Path, clock: WarpClock, broker: BrokerConfig
) -> int:
    configs = [_station(name, urls, out) for name in STATIONS]
    elements = load_station_elements(configs[0], clock.now(), TLE)
    passes = [find_passes(elements.satrec, c.site, clock.now(), 0.05) for c in configs]
    windows = common_windows(passes, min_duration_s=30.0)
    if not windows:
        raise ConfigError("no common-visibility window in the demo world; check the TLE")
    window = windows[0]
    print(
        f"  common window {iso(window.start_s)} .. {iso(window.end_s)} ({window.duration_s:.0f} s)",
        flush=True,
    )
    controllers = [StationController(c, clock, broker, elements) for c in configs]
    serving = [asyncio.create_task(c.serve()) for c in controllers]
    try:
        async with Requester(broker, clock, client_id="demo-coordinator") as coordinator:
            for c in controllers:
                await _wait_for(lambda c=c: c.summary.value == "STANDBY", 30.0, c.cfg.name)
                args_ = {
                    "start_utc": iso(window.start_s),
                    "end_utc": iso(window.end_s),
                    "campaign": "demo",
                    "peer": next(x for x in STATIONS if x != c.cfg.name),
                }
                for name, cmd_args in (("book_window", args_), ("enable", {})):
                    replies = await coordinator.send(c.cfg.name, name, cmd_args, timeout_s=15.0)
                    acks = " ".join(r.ack.value for r in replies)
                    print(f"  {c.cfg.name}: {name} -> {acks}", flush=True)
                    if replies[-1].ack.value != "COMPLETE":
                        raise ConfigError(f"{c.cfg.name} refused {name}: {replies[-1].reason}")
        budget = clock.to_wall(window.end_s + 600.0 - clock.now())
        await _wait_for(lambda: all(c.completed for c in controllers), budget, "both passes")
    finally:
        for c in controllers:
            c.request_stop()
        await asyncio.gather(*serving, return_exceptions=True)
    return _report(controllers, out)


async def _wait_for(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise DeviceError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


def _report(controllers: list[StationController], out: Path) -> int:
    ok = True
    results: dict[str, Any] = {}
    print("\nresults", flush=True)
    for c in controllers:
        summary = c.completed[-1]
        report = verify_bundle(summary["bundle"]) if summary.get("bundle") else None
        verdict = "OK" if report is not None and report.ok else "FAILED"
        ok = ok and summary["outcome"] == "complete" and verdict == "OK"
        print(
            f"  {c.cfg.name:9s} {summary['outcome']:9s} events {summary['events'] or 0:>10,} "
            f'pointing error median {(summary["median_pointing_error_deg"] or 0) * 3600:5.1f}" '
            f'max {summary["max_pointing_error_deg"] * 3600:6.1f}" '
            f"alarms {len(c.alarms):3d}  bundle verify {verdict}",
            flush=True,
        )
        print(f"            {summary.get('bundle')}", flush=True)
        quality = _quality(summary.get("bundle"))
        if quality and not quality.get("faithful", True):
            # say loudly that the warped rehearsal fell behind its clock (machine too loaded)
            print(
                f"            NOT FAITHFUL: control loops up to {quality['max_loop_lag_s']:.2f} s "
                f"behind the clock in {len(quality.get('lag_episodes', []))} episode(s); "
                "pointing lagged the satellite (try a lower --rate)",
                flush=True,
            )
        results[c.cfg.name] = {**summary, "verify": verdict, "alarms": list(c.alarms)}
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    print(f"\nsummary: {out / 'summary.json'}", flush=True)
    if ok:
        ok = _analyze([str(results[name]["bundle"]) for name in STATIONS], out)
    return 0 if ok else 1


def _quality(bundle: str | None) -> dict[str, Any]:
    """The bundle manifest's ``quality`` section (loop lag, stream gaps), or {}."""
    if not bundle:
        return {}
    try:
        manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    quality = manifest.get("quality")
    return quality if isinstance(quality, dict) else {}


def _analyze(bundles: list[str], out: Path) -> bool:
    """`qgs analyze` on the two bundles: offset, coincidences, QBER (or S), key budget."""
    from station.analysis.commands import main_analyze

    print("\nanalysis (qgs analyze)", flush=True)
    code = main_analyze(
        [
            *bundles,
            "--json",
            str(out / "analysis.json"),
            "--report",
            str(out / "report.png"),
            "--force",
        ]
    )
    if code == 0:
        print(f"\nanalysis: {out / 'analysis.json'}\nreport:   {out / 'report.png'}", flush=True)
    return code == 0


def run(args: argparse.Namespace) -> int:
    try:
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_demo(args, out))
    except (ConfigError, DeviceError, BrokerUnavailable) as exc:
        print(f"qgs demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="two stations track a Micius pass on the emulated rig")
    p.add_argument("--out", default="demo-output", help="where bundles and logs go")
    p.add_argument("--rate", type=float, default=10.0, help="warp rate (clock s per wall s)")
    p.set_defaults(func=run)
