"""`qgs devices`: the supported device drivers and their URL forms."""

from __future__ import annotations

import argparse
import sys

from drivers.errors import ConfigError
from drivers.registry import DRIVERS, TRANSPORTS, parse_device_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("devices", help="list device drivers and URL forms; check a URL")
    parser.add_argument("--check", metavar="URL", help="parse a device URL and explain it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        try:
            url = parse_device_url(args.check)
        except ConfigError as exc:
            print(f"qgs devices: {exc}", file=sys.stderr)
            return 2
        print(f"driver    {url.driver} ({url.kind}: {DRIVERS[url.driver][0]})")
        print(f"transport {url.transport_url}")
        for key, value in sorted(url.params.items()):
            print(f"param     {key}={value}")
        return 0
    print(f"{'driver':10} {'kind':11} {'default transport':18} class")
    for name, (target, transport, kind) in sorted(DRIVERS.items()):
        print(f"{name:10} {kind:11} {transport:18} {target}")
    print("\ntransports:")
    for name, form in sorted(TRANSPORTS.items()):
        print(f"  {name:8} {form}")
    return 0
