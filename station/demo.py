"""`qgs demo`: one warped common window of a two-station campaign, end to end, on defaults.

What runs (all on loopback, all stopped by PID on exit):

1. an embedded MQTT broker (Mosquitto when installed, else amqtt);
2. the rig as its own process (`python -m sim_hardware`): the physics world (satellite,
   links, entangled source, detectors, clocks) and wire-level emulators of every device;
3. one station daemon per station (`qgs station run`), real drivers against the emulators;
4. the campaign coordinator (this process): it predicts the common window, books it on
   both daemons over MQTT (Bell mode: CHSH angles; ``--mode key``: BBM92), follows both
   passes, correlates the stations' live classical-channel frames while the satellite is
   overhead, then runs ``qgs analyze`` on the two bundles and publishes the result.

A live line shows the pass (progress, elevation, pointing error, singles, coincidences,
running S or QBER); the end prints the result table (coincidences, S ± σ, QBER, locality
margin, the fibre comparison) and where the report PNG is. Output in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from drivers.errors import ConfigError, DeviceError
from station.bus.connection import BrokerConfig
from station.bus.embedded import BrokerUnavailable, EmbeddedBroker
from station.dashboard.server import DashboardServer
from station.network.campaign import CampaignDirError
from station.network.commands import network_elements
from station.network.config import load_network_config
from station.network.coordinator import Coordinator
from station.network.plan import Window
from station.network.rehearsal import Session, with_directory
from station.network.rehearse import campaign_windows, rehearse_window, world_start

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
NETWORK = ROOT / "configs/network/demo.toml"
RIG = ROOT / "configs/rig/delingha_nanshan_2020.toml"
#: Bell mode: the 2020 receivers' collection (3 dB per link over 2017, physics.md §1) without
#: the QKD security filters, which a Bell test does not need (the key mode keeps them)
BELL_RECEIVERS = (
    "--set",
    "stations.delingha.optics_loss_db=11.6",
    "--set",
    "stations.nanshan.optics_loss_db=11.6",
)
DISPLAY_PERIOD_S = 3.0  #: wall seconds between live lines


class LiveDisplay:
    """Prints one line every few wall seconds from the stations' and coordinator's topics."""

    def __init__(self, broker: BrokerConfig, stations: tuple[str, ...], coordinator: str) -> None:
        self.broker, self.stations, self.coordinator = broker, stations, coordinator
        self.pointing: dict[str, tuple[float, float]] = {}
        self.singles: dict[str, float] = {}
        self.live: dict[str, Any] = {}
        self.passes: dict[str, str] = {}

    async def run(self, session: Session, coordinator: Coordinator) -> None:
        async with self.broker.client("qgs-demo-display") as client:
            for s in self.stations:
                for suffix in ("telemetry/pointing", "telemetry/rates", "state/pass"):
                    await client.subscribe(f"qgs/v1/{s}/{suffix}", qos=0)
            await client.subscribe(f"qgs/v1/{self.coordinator}/telemetry/live", qos=0)
            printer = asyncio.create_task(self._print())
            try:
                async for message in client.messages:
                    self._take(str(message.topic), message.payload)
            finally:
                printer.cancel()
                await asyncio.gather(printer, return_exceptions=True)

    def _take(self, topic: str, payload: Any) -> None:
        try:
            body = json.loads(payload) if isinstance(payload, bytes) else {}
        except ValueError:
            return
        station, suffix = topic.split("/")[2], "/".join(topic.split("/")[3:])
        if suffix == "telemetry/pointing" and body.get("el_deg"):
            self.pointing[station] = (body["el_deg"][-1], body["error_arcsec"][-1])
        elif suffix == "telemetry/rates":
            self.singles[station] = sum(body.get("rates_hz", {}).values())
        elif suffix == "state/pass":
            self.passes[station] = str(body.get("state"))
        elif suffix == "telemetry/live":
            self.live = body

    def line(self) -> str:
        parts = []
        live = self.live
        if live:
            bar = int(20 * float(live.get("progress", 0.0)))
            parts.append(f"[{'#' * bar}{'.' * (20 - bar)}]")
        for s in self.stations:
            state = self.passes.get(s, "-")[:8]
            if s in self.pointing:
                el, err = self.pointing[s]
                where = f'el {el:4.1f}° err {err:4.1f}"'
            else:
                where = f"{'':17s}"
            parts.append(f"{s} {state:8s} {where} {self.singles.get(s, 0.0) / 1e3:5.1f}k/s")
        if live.get("locked"):
            parts.append(f"coinc {live.get('coincidences', 0)}")
            if live.get("s") is not None:
                parts.append(f"S {live['s']:.2f}±{live.get('s_sigma') or 0:.2f}")
            if live.get("qber") is not None:
                parts.append(f"QBER {live['qber'] * 100:.1f}%")
        return "  ".join(parts)

    async def _print(self) -> None:
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(DISPLAY_PERIOD_S)
            print(f"  t+{time.monotonic() - t0:4.0f}s {self.line()}", flush=True)


async def _demo(args: argparse.Namespace, out: Path) -> int:
    cfg = load_network_config(NETWORK)
    cfg = with_directory(dataclasses.replace(cfg, mode=args.mode), out / "campaign")
    shutil.rmtree(cfg.directory, ignore_errors=True)  # a fresh campaign every run
    start = world_start(RIG)
    elements = network_elements(cfg, start)
    # of the first two night windows, the one both stations see highest
    window = max(
        campaign_windows(cfg, elements, start, 2),
        key=lambda w: min(w.max_elevation_deg.values()),
    )
    rig_args = BELL_RECEIVERS if cfg.mode == "bell" else ()
    receivers = (
        "2020 collection upgrade, no QKD filters (Bell test)"
        if rig_args
        else "2020 receivers with the QKD security filters"
    )
    names = " and ".join(window.stations)
    print(
        f"qgs demo: {cfg.mode} mode, {names}, common window {window.id} "
        f"({window.duration_s:.0f} s) at {args.rate:g}x; output in {out}\n"
        f"  world: {RIG.relative_to(ROOT)}; receivers: {receivers}",
        flush=True,
    )
    async with (
        EmbeddedBroker() as broker,
        DashboardServer(broker, broker_label=f"mqtt://127.0.0.1:{broker.port}") as dashboard,
    ):
        print(f"  broker: mqtt://127.0.0.1:{broker.port} (MQTT {broker.protocol})", flush=True)
        print(f"  dashboard: {dashboard.url} (open it while the demo runs)", flush=True)
        display = LiveDisplay(broker, window.stations, cfg.coordinator.name)
        done = await rehearse_window(
            cfg, elements, RIG, broker, window, args.rate, hook=display.run, rig_args=rig_args
        )
    return _report(done, out)


def _report(w: Window, out: Path) -> int:
    print(f"\nwindow {w.id}: {w.status.value}" + (f" ({w.reason})" if w.reason else ""))
    result = w.result or {}
    for name, p in (result.get("passes") or w.passes).items():
        print(f"  {name:9s} pass {p.get('outcome', '?'):9s} events {p.get('events') or 0:>10,}")
        print(f"            {p.get('bundle')}")
    f = result.get("figures")
    if not f:
        print(f"  no result: {result.get('analysis_error') or w.reason}", flush=True)
        return 1
    analysis_txt = Path(str(result["analysis"])).with_name("analysis.txt")
    if analysis_txt.exists():
        print("\nanalysis (qgs analyze)\n" + analysis_txt.read_text().rstrip())
    print("\nresults")
    print(f"  coincidences     {f['coincidences']} ({f['pair_rate_hz']:.2f} pairs/s)")
    if f.get("s") is not None:
        print(
            f"  S = {f['s']:.3f} ± {f['s_sigma']:.3f}   "
            f"({f['violation_sigma']:.1f} σ above the local bound 2)"
        )
    if f.get("qber") is not None:
        print(f"  QBER = {f['qber'] * 100:.2f} ± {f['qber_sigma'] * 100:.2f} %")
    elif f.get("qber_from_s") is not None:
        print(
            f"  QBER = {f['qber_from_s'] * 100:.1f} ± {f['qber_from_s_sigma'] * 100:.1f} % "
            "(from S: the Bell settings share no basis; (1 - S/2√2)/2)"
        )
    if f.get("locality_fraction_spacelike") is not None:
        print(
            f"  locality         {f['locality_fraction_spacelike'] * 100:.0f} % space-like, "
            f"min margin {f['locality_min_margin_us']:.1f} µs"
        )
    fibre = f.get("fibre")
    if fibre:
        print(
            f"  fibre            two-downlink loss {fibre['channel_loss_db']:.1f} dB = "
            f"{fibre['equivalent_fibre_1550_km']:.0f} km of 1550 nm fibre "
            f"({fibre['equivalent_fibre_810_km']:.0f} km at 810 nm); over the stations' "
            f"{fibre['distance_km']:.0f} km, fibre would give "
            f"1e{fibre['log10_fibre_pairs_1550_per_s']:.0f} pairs/s at 1550 nm "
            f"against {f['pair_rate_hz']:.2f} by satellite"
        )
    live = result.get("live") or {}
    if live.get("locked"):
        print(
            f"  live (during the pass): {live.get('coincidences')} coincidences"
            + (f", S {live['s']:.2f} ± {live['s_sigma']:.2f}" if live.get("s") else "")
            + (f", QBER {live['qber'] * 100:.1f} %" if live.get("qber") is not None else "")
        )
    print(f"\nanalysis: {result['analysis']}\nreport:   {result['report']}", flush=True)
    return 0 if w.status.value == "done" else 1


def run(args: argparse.Namespace) -> int:
    try:
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_demo(args, out))
    except (ConfigError, DeviceError, BrokerUnavailable, CampaignDirError) as exc:
        print(f"qgs demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="a two-station campaign window on the emulated rig")
    p.add_argument("--out", default="demo-output", help="where bundles, results, logs go")
    p.add_argument("--rate", type=float, default=10.0, help="warp rate (clock s per wall s)")
    p.add_argument("--mode", choices=("bell", "key"), default="bell", help="experiment")
    p.set_defaults(func=run)
