"""The daemon's own health for long runs: asyncio tasks, resident memory, descriptors, threads.

Published on ``telemetry/process`` every :data:`PERIOD_WALL_S` wall seconds (process health is
wall-time by nature: a leak grows per wall second of work, however warped the station clock
is). A monitor or the soak (reliability/soak.py) sees growth that a pass-by-pass view hides:
a task left behind per pass, a descriptor per reconnect.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

PERIOD_WALL_S = 10.0


def process_health() -> dict[str, Any]:
    """This process now: ``asyncio_tasks`` (of the running loop), ``rss_kib``, ``fds``,
    ``threads``. Fields /proc cannot give (not Linux) are None."""
    rss: int | None = None
    fds: int | None = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    return {
        "asyncio_tasks": len(asyncio.all_tasks()),
        "rss_kib": rss,
        "fds": fds,
        "threads": threading.active_count(),
    }


async def publish_process_health(
    publish: Callable[[str, dict[str, Any]], Awaitable[None]],
    period_wall_s: float = PERIOD_WALL_S,
) -> None:
    """Publish :func:`process_health` every ``period_wall_s`` until cancelled."""
    while True:
        await publish("process", process_health())
        await asyncio.sleep(period_wall_s)  # wall time on purpose (module doc)
