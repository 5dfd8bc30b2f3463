"""`qgs station run` (the daemon) and `qgs cmd` (send one command, print its acks).

::

    qgs station run --config configs/stations/delingha.toml
    qgs station run --config configs/stations/delingha.toml \\
        --devices-json urls.json --tle configs/satellites/micius-2021.tle --enable
    qgs cmd delingha get_schedule --broker mqtt://127.0.0.1:1883
    qgs cmd delingha goto az_deg=120 el_deg=45

``--devices-json`` takes the file ``qgs rig --urls-json`` writes: the station's own entry
replaces ``[devices]`` and its ``_clock`` becomes the station clock (one warped timeline
for the rig and every daemon) unless ``--clock`` is given. SIGTERM / Ctrl-C abort a pass
in progress (the bundle is closed as ``aborted``), stow the mount and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt

from drivers.clock import Clock, SystemClock, WarpClock, WarpSpec
from drivers.errors import ConfigError, DeviceError
from station.bus.connection import BrokerConfig, read_secret
from station.bus.embedded import BrokerUnavailable, EmbeddedBroker
from station.bus.requester import CommandTimeout, Requester
from station.config import DevicesConfig, StationConfig, load_station_config
from station.daemon.controller import StationController
from station.tracking.elements import OrbitElements, load_catalog, load_elements, select

log = logging.getLogger(__name__)


def load_station_elements(
    cfg: StationConfig, now_s: float, path: Path | None = None
) -> OrbitElements:
    """The configured element set (file or catalog directory), checked for age at ``now_s``."""
    source = path or cfg.tle.path
    if source is None:
        raise ConfigError("no orbit elements: set [tle] path", source=cfg.source, key="tle.path")
    pool = load_catalog(source) if Path(source).is_dir() else load_elements(source)
    elements = select(pool, norad_id=cfg.tle.norad_id, now_s=now_s)
    elements.check_age(now_s, max_age_days=cfg.tle.max_age_days)
    return elements


def apply_devices_json(cfg: StationConfig, path: Path) -> tuple[StationConfig, str | None]:
    """Replace ``[devices]`` with this station's entry of a rig URL file; return its clock."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read device URLs: {exc}", source=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get(cfg.name), dict):
        stations = (
            sorted(k for k in data if not k.startswith("_")) if isinstance(data, dict) else []
        )
        raise ConfigError(
            f"no entry for station {cfg.name!r}; the file has {stations}", source=str(path)
        )
    urls = data[cfg.name]
    devices = DevicesConfig(
        mount=urls.get("mount"), hwp=urls.get("hwp"), timetagger=urls.get("timetagger")
    )
    clock = data.get("_clock")
    return dataclasses.replace(cfg, devices=devices), clock if isinstance(clock, str) else None


@contextlib.asynccontextmanager
async def broker_for(cfg: StationConfig, override: str | None) -> AsyncIterator[BrokerConfig]:
    """The configured broker, or an embedded one (started here, stopped on exit)."""
    mqtt = cfg.daemon.mqtt
    url = override or mqtt.broker
    if url == "embedded":
        async with EmbeddedBroker() as broker:
            print(f"embedded broker at mqtt://127.0.0.1:{broker.port}", flush=True)
            yield broker
        return
    password = None
    if mqtt.password_file is not None:
        password = read_secret(mqtt.password_file, source=cfg.source, key="mqtt.password_file")
    yield BrokerConfig.from_url(
        url,
        username=mqtt.username,
        password=password,
        ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
    )


def _clock(spec: str | None) -> Clock:
    return WarpClock.from_spec(WarpSpec.parse(spec)) if spec else SystemClock()


async def run_daemon(args: argparse.Namespace) -> int:
    cfg = load_station_config(args.config)
    clock_spec = args.clock
    if args.devices_json:
        cfg, rig_clock = apply_devices_json(cfg, Path(args.devices_json))
        clock_spec = clock_spec or rig_clock
    if args.data_dir:
        recording = dataclasses.replace(cfg.daemon.recording, data_dir=Path(args.data_dir))
        cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(cfg.daemon, recording=recording))
    if args.username or args.password_file or args.ca_file:
        mqtt = cfg.daemon.mqtt
        mqtt = dataclasses.replace(
            mqtt,
            username=args.username or mqtt.username,
            password_file=Path(args.password_file) if args.password_file else mqtt.password_file,
            ca_file=Path(args.ca_file) if args.ca_file else mqtt.ca_file,
        )
        cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(cfg.daemon, mqtt=mqtt))
    clock = _clock(clock_spec)
    elements = load_station_elements(cfg, clock.now(), Path(args.tle) if args.tle else None)
    async with broker_for(cfg, args.broker) as broker:
        controller = StationController(cfg, clock, broker, elements, enable=args.enable)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, controller.request_stop)
        if args.duration is not None:
            loop.call_later(args.duration, controller.request_stop)
        await controller.serve()
    return 0


async def send_command(args: argparse.Namespace) -> int:
    parsed: dict[str, Any] = {}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"command argument {item!r}: expected key=value")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value  # a bare string
    password = args.password
    if args.password_file:
        password = await asyncio.to_thread(read_secret, args.password_file)
    if args.ca_file:
        await asyncio.to_thread(read_secret, args.ca_file, "CA file")  # fail with its name
    broker = BrokerConfig.from_url(
        args.broker,
        username=args.username,
        password=password,
        ca_file=args.ca_file,
        protocol="v311" if args.v311 else "v5",
    )
    async with Requester(broker, SystemClock()) as requester:
        # expires_at must be on the station's (possibly warped) clock, which checks it
        await requester.use_station_clock(args.station)
        replies = await requester.send(args.station, args.name, parsed, timeout_s=args.timeout)
    for reply in replies:
        body = {"ack": reply.ack.value, "reason": reply.reason, "result": reply.result}
        print(json.dumps({k: v for k, v in body.items() if v is not None}))
    return 0 if replies and replies[-1].ack.value == "COMPLETE" else 1


def _guard(coro_fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result = asyncio.run(coro_fn(args))
            assert isinstance(result, int)
            return result
        except (ConfigError, DeviceError, BrokerUnavailable, CommandTimeout) as exc:
            print(f"qgs: {exc}", file=sys.stderr)
            return 2
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            # an unreachable or refusing broker, a TLS failure: one line, not a traceback
            print(
                f"qgs: cannot use the broker {args.broker}: {exc or type(exc).__name__}",
                file=sys.stderr,
            )
            return 2
        except KeyboardInterrupt:
            return 130

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    station = sub.add_parser("station", help="run the station operator daemon")
    station_sub = station.add_subparsers(dest="station_command", metavar="<action>", required=True)
    run = station_sub.add_parser("run", help="connect the devices and run passes unattended")
    run.add_argument("--config", required=True, help="station TOML (configs/stations/*.toml)")
    run.add_argument("--devices-json", help="device URLs (and clock) written by `qgs rig`")
    run.add_argument("--clock", help="warp clock epoch=<s>,anchor=<s>,rate=<x>")
    run.add_argument("--broker", help="broker URL or 'embedded' (overrides [mqtt] broker)")
    run.add_argument("--tle", help="orbit elements file (overrides [tle] path)")
    run.add_argument("--data-dir", help="where pass bundles go (overrides [recording])")
    run.add_argument("--username", help="broker user (overrides [mqtt] username)")
    run.add_argument("--password-file", help="broker password file (overrides [mqtt])")
    run.add_argument("--ca-file", help="CA for an mqtts:// broker (overrides [mqtt] ca_file)")
    run.add_argument("--enable", action="store_true", help="start ENABLED (run the schedule)")
    run.add_argument("--duration", type=float, help="stop after this many wall seconds")
    run.set_defaults(func=_guard(run_daemon))

    cmd = sub.add_parser("cmd", help="send one command to a station and print the acks")
    cmd.add_argument("station")
    cmd.add_argument("name", help="command name (see docs/mqtt-api.md)")
    cmd.add_argument("args", nargs="*", help="arguments as key=value (values parsed as JSON)")
    cmd.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    cmd.add_argument("--username")
    cmd.add_argument(
        "--password", help="visible to every user in the process list: prefer --password-file"
    )
    cmd.add_argument("--password-file", help="read the broker password from this file")
    cmd.add_argument("--ca-file", help="CA certificate to verify an mqtts:// broker")
    cmd.add_argument("--v311", action="store_true", help="MQTT 3.1.1 (e.g. amqtt)")
    cmd.add_argument("--timeout", type=float, default=10.0, help="wall seconds to wait for ACK")
    cmd.set_defaults(func=_guard(send_command))
