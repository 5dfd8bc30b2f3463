"""`qgs rig`: start the emulated plant as its own process.

The station never imports :mod:`sim_hardware` (DESIGN.md): the rig runs as a separate
process, exactly as a test bench would sit across a cable from the station computer. This
command only executes ``python -m sim_hardware`` with the same arguments and forwards
Ctrl-C / SIGTERM to it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "rig",
        help="run the emulated hardware rig (python -m sim_hardware)",
        add_help=False,
    )
    parser.set_defaults(func=run, passthrough=True)


def run(args: argparse.Namespace) -> NoReturn:
    argv = [sys.executable, "-m", "sim_hardware", *args.extra]
    # Replace this process: signals reach the rig directly and its exit code is ours.
    os.execv(sys.executable, argv)
