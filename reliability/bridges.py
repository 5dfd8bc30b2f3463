"""Central broker outage (bridged sites): run the bridge test and quote its figures.

tests/integration/network/test_site_bridges.py restarts the central broker mid-pass and prints
one line starting ``bridges back after central restart:``; the harness runs it with ``-s``
(bounded) and keeps that line and the test's verdict.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

from reliability.broker import ROOT

TEST = "tests/integration/network/test_site_bridges.py"
COMMAND = f"python -m pytest -s -q -p no:cacheprovider {TEST}"
BOUND_S = 600.0
MARK = "bridges back after central restart:"


@dataclass
class BridgeOutage:
    line: str | None
    passed: bool
    wall_s: float
    tail: str = ""


def run_bridges() -> BridgeOutage:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", TEST],
            capture_output=True,
            timeout=BOUND_S,
            cwd=ROOT,
            text=True,
        )
    except subprocess.TimeoutExpired:
        return BridgeOutage(None, False, round(time.monotonic() - t0, 1), "timed out")
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith(MARK)]
    out = BridgeOutage(
        lines[-1] if lines else None, proc.returncode == 0, round(time.monotonic() - t0, 1)
    )
    if proc.returncode != 0:  # why: pytest's "E" lines and the summary, not the log noise
        why = [ln for ln in proc.stdout.splitlines() if ln.startswith(("E ", "FAILED", "ERROR"))]
        out.tail = "\n".join(why[:25])[-2500:]
    print(f"bridges: {out.line} (passed {out.passed}, {out.wall_s} s)", flush=True)
    return out
