"""Start the emulated rig and station daemons as child processes; stop them by PID.

One launcher for everything that runs the plant and the station as a test bench would (the
rehearsals and the demo, ``make reliability``, the integration tests): the rig is
``python -m sim_hardware`` (the station never imports it, DESIGN.md) on a shared
:class:`~drivers.clock.WarpSpec`, writing its device URLs to a JSON file; a daemon is
``qgs station run`` on those URLs. Each child writes its stderr to a log file (our copy of
the descriptor is closed at once); a rig that exits or writes no URL file within its bound
raises :class:`RigStartError` with the end of its log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.clock import WarpSpec
from drivers.errors import DeviceError

ROOT = Path(__file__).resolve().parents[1]
RIG_START_BOUND_S = 60.0  #: wall s for the rig to write its URL file (a loaded 2-core machine)


class RigStartError(DeviceError):
    """The rig exited or wrote no URL file in time."""


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM, wait (bounded), then SIGKILL: by PID, never by name."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_rig(
    config: Path,
    spec: WarpSpec,
    urls: Path,
    log: Path,
    *,
    extra: Sequence[str] = (),
    bound_s: float = RIG_START_BOUND_S,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The rig on ``spec``'s clock; returns the process and its URL file's content.

    ``extra``: more rig options, e.g. ``--set KEY=VALUE`` (sim_hardware/overrides.py).
    """
    urls.unlink(missing_ok=True)
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "sim_hardware", "--config", str(config)),
                *("--urls-json", str(urls), "--clock", spec.to_string()),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
        )
    deadline = time.monotonic() + bound_s
    while not urls.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RigStartError(f"the rig did not start (see {log}):\n{tail}")
        time.sleep(0.05)
    for _ in range(100):  # written by the rig in one go, but read it whole
        try:
            return proc, json.loads(urls.read_text())
        except ValueError:
            time.sleep(0.05)
    stop(proc)
    raise RigStartError(f"the rig's URL file {urls} is not JSON")


def start_station(
    config: Path | str,
    urls: Path,
    tle: Path,
    broker_url: str,
    data_dir: Path,
    log: Path,
    *,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``qgs station run`` for ``config`` on the rig's ``urls`` (INFO log to ``log``).

    ``extra``: more options, e.g. ``--username``/``--password-file`` for a secured broker
    (they override nothing else).
    """
    with log.open("wb") as err:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "station.cli", "--log-level", "INFO"),
                *("station", "run", "--config", str(config)),
                *("--devices-json", str(urls), "--tle", str(tle)),
                *("--broker", broker_url, "--data-dir", str(data_dir)),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
        )


def live_children(pid: int) -> dict[int, str]:
    """pid -> command line of the live (non-zombie) children of ``pid``, from /proc (Linux;
    empty elsewhere). For leak checks: a test or a soak that left a process running."""
    out: dict[int, str] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, ...
            if int(rest[1]) != pid or rest[0] == "Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        out[int(entry)] = cmd[:200]
    return out
