"""``python -m sim_hardware --config configs/rig/<name>.toml``: run the emulated plant.

Prints the device URLs per station as one JSON line on stdout (and writes them atomically to
``--urls-json``), then runs until SIGINT or SIGTERM and stops every emulator (exit 0).
Configuration errors print one line on stderr and exit 2.

Clock: ``--clock epoch=<s>,anchor=<s>,rate=<x>`` shares a warp with other processes (the
station daemons get the same spec; it is also written to the URLs JSON as ``"_clock"``).
Without it the simulation starts now in wall time at ``--start`` (ISO UTC or POSIX s; default
the world's ``[world] start_utc``, else the present) and runs at ``--rate`` (default
``[rig] rate``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from drivers.clock import WarpClock, WarpSpec
from drivers.config import Table, load_toml
from drivers.errors import ConfigError
from sim_hardware.overrides import apply_overrides
from sim_hardware.rig import Rig
from sim_hardware.world import load_world_config

log = logging.getLogger("sim_hardware")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim_hardware", description=__doc__)
    p.add_argument("--config", required=True, help="rig config TOML")
    p.add_argument("--urls-json", help="write the device URLs here (atomically)")
    p.add_argument("--clock", help="shared warp clock: epoch=<s>,anchor=<s>,rate=<x>")
    p.add_argument(
        "--start",
        help="without --clock: simulated start, ISO UTC or POSIX s "
        "(default: [world] start_utc, else now)",
    )
    p.add_argument("--rate", type=float, help="without --clock: warp rate (default: [rig] rate)")
    p.add_argument("--seed", type=int, help="override rig.seed")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config input, e.g. stations.delingha.optics_loss_db=11.6 "
        "(repeatable; sim_hardware/overrides.py)",
    )
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return p


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_instant(text: str) -> float:
    """POSIX seconds from ISO 8601 (UTC unless an offset is given) or a plain number."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--start {text!r}: expected ISO UTC like 2021-04-29T17:18:00Z or POSIX seconds",
            key="start",
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def make_clock(args: argparse.Namespace, config: Table) -> WarpClock:
    """The rig's clock from ``--clock``, or from ``--start``/``--rate`` and the config."""
    if args.clock:
        if args.start is not None or args.rate is not None:
            raise ConfigError("--clock already fixes the start and rate", key="clock")
        return WarpClock.from_spec(WarpSpec.parse(args.clock))
    rig_cfg = config.table("rig", required=False)
    rate = rig_cfg.number("rate", 1.0, min=1e-6) if args.rate is None else args.rate
    now = time.time()
    if args.start is not None:
        epoch = parse_instant(args.start)
    elif "world" in config and (start := load_world_config(config).start_time) is not None:
        epoch = start
    else:
        epoch = now
    return WarpClock(epoch, anchor=now, rate=rate)


async def _run(args: argparse.Namespace) -> int:
    config = load_toml(args.config)
    if args.set:
        data = apply_overrides(config.raw_data(), args.set)
        config = Table(data, source=f"{config.source} (with --set)")
    clock = make_clock(args, config)
    rig = Rig(config, clock, seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await rig.start()
        text = json.dumps(rig.urls())
        if args.urls_json:
            write_atomically(Path(args.urls_json), text + "\n")
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        await stop.wait()
        log.info("signal received; stopping the rig")
    finally:
        await rig.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(_run(args))
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"sim_hardware: configuration error: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"sim_hardware: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
