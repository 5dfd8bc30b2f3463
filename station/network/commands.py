"""`qgs network run`: the campaign coordinator daemon.

::

    qgs network run --config configs/network/delingha_lijiang_2017.toml
    qgs network run --config configs/network/demo.toml --broker mqtt://127.0.0.1:1883 \\
        --devices-json urls.json --windows 1

``--devices-json`` (the file ``qgs rig --urls-json`` writes) gives the rig's warped clock,
the one timeline every station daemon of the rehearsal runs on; ``--clock`` gives it
directly. ``--windows N`` stops after N windows ended (done, partial or failed), which is
how a rehearsal or the demo ends; without it the coordinator runs until SIGTERM/Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from drivers.clock import Clock, SystemClock, WarpClock, WarpSpec
from drivers.errors import ConfigError, DeviceError
from station.bus.connection import BrokerConfig, read_secret
from station.bus.embedded import BrokerUnavailable, EmbeddedBroker
from station.network.campaign import CampaignDirError
from station.network.config import NetworkConfig, load_network_config
from station.network.coordinator import Coordinator
from station.network.rehearsal import with_directory
from station.tracking.elements import OrbitElements, load_elements, select


def network_elements(cfg: NetworkConfig, now_s: float, path: Path | None = None) -> OrbitElements:
    """The campaign's element set, checked for age at ``now_s``."""
    pool = load_elements(path or cfg.tle_path)
    elements = select(pool, norad_id=cfg.norad_id, now_s=now_s)
    elements.check_age(now_s, max_age_days=cfg.max_age_days)
    return elements


def broker_config(cfg: NetworkConfig, url: str) -> BrokerConfig:
    k = cfg.coordinator
    password = None
    if k.password_file is not None:
        password = read_secret(k.password_file, source=cfg.source, key="coordinator.password_file")
    return BrokerConfig.from_url(
        url,
        username=k.username,
        password=password,
        ca_file=str(k.ca_file) if k.ca_file else None,
    )


def _clock(args: argparse.Namespace) -> Clock:
    spec = args.clock
    if args.devices_json and not spec:
        try:
            spec = json.loads(Path(args.devices_json).read_text()).get("_clock")
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"cannot read the rig's clock: {exc}", source=args.devices_json
            ) from None
    return WarpClock.from_spec(WarpSpec.parse(spec)) if spec else SystemClock()


async def run_coordinator(args: argparse.Namespace) -> int:
    cfg = load_network_config(args.config)
    if args.campaign_dir:
        cfg = with_directory(cfg, Path(args.campaign_dir))
    clock = _clock(args)
    elements = network_elements(cfg, clock.now(), Path(args.tle) if args.tle else None)
    url = args.broker or cfg.coordinator.broker
    if url == "embedded":
        async with EmbeddedBroker() as embedded:
            print(f"embedded broker at mqtt://127.0.0.1:{embedded.port}", flush=True)
            return await _serve(cfg, clock, embedded, elements, args)
    return await _serve(cfg, clock, broker_config(cfg, url), elements, args)


async def _serve(
    cfg: NetworkConfig,
    clock: Clock,
    broker: BrokerConfig,
    elements: OrbitElements,
    args: argparse.Namespace,
) -> int:
    coordinator = Coordinator(cfg, clock, broker, elements, max_windows=args.windows)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, coordinator.request_stop)
    await coordinator.serve()
    for w in coordinator.windows:
        if w.id in coordinator.ended:
            print(json.dumps({"window": w.id, "status": w.status.value, "reason": w.reason}))
    return 0


def guard(
    coro_fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace
) -> int:
    """Run a `qgs network` action: expected failures are one line and exit 2."""
    try:
        return asyncio.run(coro_fn(args))
    except (ConfigError, DeviceError, BrokerUnavailable, CampaignDirError) as exc:
        print(f"qgs network: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def write_brokers(args: argparse.Namespace) -> int:
    from station.network.brokers import write_broker_kit

    try:
        cfg = load_network_config(args.config)
        ports: dict[str, int] = {}
        for item in args.site_port:
            name, sep, port = item.partition("=")
            if not sep or not port.isdigit():
                raise ConfigError(f"--site-port {item!r}: expected STATION=PORT")
            ports[name] = int(port)
        names = [st.name for st in cfg.stations]
        kit = write_broker_kit(
            names,
            Path(args.out),
            coordinator=cfg.coordinator.name,
            central_host=args.central_host,
            central_port=args.central_port,
            central_local_port=args.central_local_port,
            site_ports={**{s: 1884 + i for i, s in enumerate(names)}, **ports},
        )
    except ConfigError as exc:
        print(f"qgs network: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {kit.out}; start the brokers with")
    for broker in ("central", *names):
        print(f"  mosquitto -c {kit.conf(broker)}")
    print(f"clients' passwords: {kit.out / 'credentials'}/<broker>/<user>.pw (mode 0600)")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    network = sub.add_parser("network", help="campaign coordinator of several stations")
    actions = network.add_subparsers(dest="network_command", metavar="<action>", required=True)
    run = actions.add_parser(
        "run",
        help="book common windows on the stations, follow them, analyse, publish results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", required=True, help="network TOML (configs/network/*.toml)")
    run.add_argument("--broker", help="broker URL or 'embedded' (overrides [coordinator] broker)")
    run.add_argument("--devices-json", help="take the rig's warped clock from this URL file")
    run.add_argument("--clock", help="warp clock epoch=<s>,anchor=<s>,rate=<x>")
    run.add_argument("--tle", help="orbit elements file (overrides [satellite] tle)")
    run.add_argument("--campaign-dir", help="overrides [campaign] directory")
    run.add_argument("--windows", type=_positive, help="stop after this many windows ended")
    run.set_defaults(func=lambda args: guard(run_coordinator, args))
    from station.network.rehearse import register as register_rehearse

    register_rehearse(actions)
    brokers = actions.add_parser(
        "brokers",
        help="write site brokers bridged over TLS to a central broker (configs, ACLs, CA)",
    )
    brokers.add_argument("--config", required=True, help="network TOML (its stations)")
    brokers.add_argument("--out", required=True, help="directory to write into")
    brokers.add_argument("--central-host", default="127.0.0.1", help="central broker's host")
    brokers.add_argument("--central-port", type=int, default=8883, help="its TLS port")
    brokers.add_argument(
        "--central-local-port", type=int, default=1883, help="its loopback port (local clients)"
    )
    brokers.add_argument(
        "--site-port",
        action="append",
        default=[],
        metavar="STATION=PORT",
        help="a site broker's loopback port (default 1884, 1885, ... in config order)",
    )
    brokers.set_defaults(func=write_brokers)
