"""A campaign rehearsed on the emulated rig: one rig session per common window.

The rig's world runs on a warped clock (10-12x on the 2-core machine is what the daemons'
control loops keep up with), so the 1.5-24 h between two common windows cannot be lived
through. A rehearsal therefore starts, for each window, a fresh rig whose clock begins a
few minutes before the earlier station's AOS, the station daemons (real processes, real
drivers, the campaign's broker) and a coordinator; the coordinator books and follows the
window, analyses it and exits; everything is stopped by PID; the next window gets the next
session. The campaign state lives in the campaign directory, so each session's coordinator
continues the same campaign — which is also what a coordinator restarted in production does.

Used by ``qgs network rehearse`` (docs/campaigns.md), ``qgs demo`` and the campaign test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from drivers.clock import WarpSpec
from station.network.config import NetworkConfig
from station.network.plan import Window
from station.processes import start_rig, start_station, stop
from station.tracking.elements import OrbitElements
from station.tracking.passes import find_passes

ROOT = Path(__file__).resolve().parents[2]
LEAD_S = 150.0  #: clock s between the rig's start and the earlier station's AOS
START_WALL_S = 3.0  #: wall s between launching the processes and the clock's anchor


@dataclass
class Session:
    """The processes of one rehearsal window (all stopped by PID on exit)."""

    out: Path
    spec: WarpSpec
    urls: Path
    procs: dict[str, subprocess.Popen[bytes]]

    def kill(self, name: str) -> None:
        """SIGKILL one process (a station crash, for fault rehearsals)."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def session_start_s(cfg: NetworkConfig, elements: OrbitElements, window: Window) -> float:
    """The clock time a window's rig session starts: ``LEAD_S`` before the first AOS.

    A station takes the whole pass that overlaps the window (from its own AOS at its own
    minimum elevation), so the session starts before the earlier of the two AOS.
    """
    first = window.start_s
    for name in window.stations:
        site = cfg.station(name).config.site
        for p in find_passes(elements.satrec, site, window.start_s - 1200.0, 1200.0 / 86400.0):
            if p.los_s >= window.start_s:
                first = min(first, p.aos_s)
    return first - LEAD_S


@contextlib.contextmanager
def rig_session(
    cfg: NetworkConfig,
    rig_config: Path,
    tle: Path,
    broker_url: str,
    out: Path,
    start_s: float,
    rate: float,
    rig_args: Sequence[str] = (),
    daemon_args: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[Session]:
    """Start the rig and one station daemon per campaign station; stop them all on exit.

    ``rig_args``: extra rig options, e.g. ``--set`` overrides (sim_hardware/overrides.py).
    ``daemon_args``: per station, extra ``qgs station run`` options (its own site broker:
    ``--broker``, ``--username``, ``--password-file``; they override ``broker_url``).
    """
    out.mkdir(parents=True, exist_ok=True)
    spec = WarpSpec(epoch=start_s, anchor=time.time() + START_WALL_S, rate=rate)
    urls = out / "urls.json"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["rig"], _ = start_rig(rig_config, spec, urls, out / "rig.log", extra=rig_args)
        for st in cfg.stations:
            procs[st.name] = start_station(
                st.config.source,
                urls,
                tle,
                broker_url,
                out / "bundles",
                out / f"{st.name}.log",
                extra=(daemon_args or {}).get(st.name, ()),
            )
        yield Session(out, spec, urls, procs)
    finally:
        for proc in reversed(list(procs.values())):
            stop(proc)


def with_directory(cfg: NetworkConfig, directory: Path) -> NetworkConfig:
    return dataclasses.replace(cfg, directory=directory)
