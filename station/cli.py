"""The `qgs` command line: one entry point, one subcommand per job.

Each feature module exposes ``register(subparsers)`` that adds its subcommands and sets
``func`` to a handler ``(args) -> int``. Handlers turn expected failures (bad config, bad
TLE, unreachable device) into a one-line message on stderr and exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

#: modules whose ``register(subparsers)`` adds subcommands, in help order
COMMAND_MODULES = (
    "station.demo",
    "station.tracking.commands",
    "station.recording.commands",
    "station.analysis.commands",
    "station.daemon.commands",
    "station.network.commands",
    "station.rig_command",
    "station.devices_command",
    "station.monitor",
    "station.dashboard.commands",
)


def _version() -> str:
    try:
        return version("quantum-ground-station")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qgs",
        description="Control software for quantum-communication optical ground stations.",
    )
    parser.add_argument("--version", action="version", version=f"qgs {_version()}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default WARNING)",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qgs` console script."""
    parser = build_parser()
    # Pass-through commands (``qgs rig ...``) hand every remaining argument to another
    # program; argparse's REMAINDER cannot take leading options, so collect them here.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result = func(args)
    assert isinstance(result, int)
    return result


if __name__ == "__main__":
    sys.exit(main())
