"""`qgs dashboard`: serve the read-only network dashboard on loopback and print its URL.

With no ``--broker`` it starts an embedded broker (like ``qgs station run`` with
``broker = "embedded"``) and prints that broker's URL too, so stations can be pointed at it;
the page then says that nothing is connected yet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from drivers.errors import ConfigError
from station.bus.connection import BrokerConfig
from station.bus.embedded import BrokerUnavailable, EmbeddedBroker
from station.dashboard.server import DashboardServer

DEFAULT_PORT = 8765


def _label(cfg: BrokerConfig) -> str:
    """The broker as the page shows it (never the password)."""
    if cfg.unix_socket is not None:
        return f"unix://{cfg.unix_socket}"
    user = f"{cfg.username}@" if cfg.username else ""
    return f"{'mqtts' if cfg.tls else 'mqtt'}://{user}{cfg.host}:{cfg.port}"


async def serve(broker: BrokerConfig | None, *, port: int, duration_s: float | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``duration_s`` wall seconds)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        embedded = broker is None
        if broker is None:
            broker = await stack.enter_async_context(EmbeddedBroker())
            print(f"qgs dashboard: embedded broker {_label(broker)}", flush=True)
        server = await stack.enter_async_context(
            DashboardServer(broker, broker_label=_label(broker), port=port, embedded=embedded)
        )
        print(f"qgs dashboard: {server.url}", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration_s):
                await stop.wait()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dashboard",
        help="read-only web dashboard of the whole network (loopback URL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--broker", help="broker URL (default: start an embedded broker on loopback)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"HTTP port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument("--username", help="broker user (the monitor role is enough)")
    parser.add_argument("--password-file", help="file whose first line is the password")
    parser.add_argument("--ca-file", help="CA file for mqtts:// brokers")
    parser.add_argument("--v311", action="store_true", help="use MQTT 3.1.1 (e.g. amqtt)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many s")
    parser.set_defaults(func=run)


def _broker(args: argparse.Namespace) -> BrokerConfig | None:
    if args.broker is None:
        if args.username or args.password_file:
            raise ConfigError("--username/--password-file need --broker", key="--broker")
        return None
    password = None
    if args.password_file:
        try:
            lines = Path(args.password_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the password file: {exc}", key="--password-file"
            ) from None
        password = lines[0].strip() if lines else ""
    return BrokerConfig.from_url(
        args.broker,
        username=args.username,
        password=password,
        ca_file=args.ca_file,
        protocol="v311" if args.v311 else "v5",
    )


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print("qgs dashboard: --port must be 0..65535", file=sys.stderr)
        return 2
    try:
        broker = _broker(args)
        asyncio.run(serve(broker, port=args.port, duration_s=args.duration))
    except (ConfigError, BrokerUnavailable) as exc:
        print(f"qgs dashboard: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"qgs dashboard: cannot serve on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
