"""Peak pointing error of a warped two-station pass on a loaded machine vs the field of view.

Candidate: `qgs demo` (two station daemons, the rig, an embedded broker; the demo's 10x warp)
while two CPU-bound processes load the machine's cores; the peak following error of both
stations during TRACK, from their bundles' pointing.csv (actual position stamped when it was
read, against the planned line of sight). Baseline: the receiver field-of-view half-angle
(0.1 deg): the coupling is exp(-2) = 13.5 % at one field of view, so the ratio FOV / peak
must stay above 1 (target 2: at half a field of view the coupling is still 61 %).
Also reported (``extra``): the median error, each daemon's worst loop lag against its clock
and whether it marked its bundle "not faithful", and the coincidences the analysis found.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import Result

FOV_DEG = 0.1
RATE = 10.0
LOAD_PROCESSES = 2
TIMEOUT_S = 400.0


def _errors(bundle: Path) -> list[float]:
    out = []
    with open(bundle / "pointing.csv") as f:
        for row in csv.DictReader(f):
            a1, e1, a2, e2 = (
                math.radians(float(row[k]))
                for k in ("cmd_az_deg", "cmd_el_deg", "act_az_deg", "act_el_deg")
            )
            c = math.sin(e1) * math.sin(e2) + math.cos(e1) * math.cos(e2) * math.cos(a1 - a2)
            out.append(math.degrees(math.acos(min(1.0, c))))
    return out


def run() -> list[Result]:
    load = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(LOAD_PROCESSES)
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="qgs-bench-lag-") as tmp:
            out = Path(tmp)
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "station.cli",
                    "demo",
                    "--out",
                    str(out),
                    "--rate",
                    str(RATE),
                ],
                capture_output=True,
                timeout=TIMEOUT_S,
                check=False,
            )
            summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
            errors: list[float] = []
            extra: dict[str, Any] = {"demo_exit": proc.returncode, "load_processes": LOAD_PROCESSES}
            for name, s in summary.items():
                bundle = Path(s["bundle"])
                e = _errors(bundle)
                errors += e
                quality = json.loads((bundle / "manifest.json").read_text()).get("quality", {})
                extra[f"{name}_peak_deg"] = round(max(e), 4)
                extra[f"{name}_max_loop_lag_s"] = quality.get("max_loop_lag_s")
                extra[f"{name}_faithful"] = quality.get("faithful")
                extra[f"{name}_lag_episodes"] = len(quality.get("lag_episodes", []))
            errors.sort()
            extra["median_deg"] = round(errors[len(errors) // 2], 5)
            analysis = out / "analysis.json"
            if analysis.exists():
                pair = json.loads(analysis.read_text())["pairs"][0]
                extra["coincidences"] = pair["coincidences"]
    finally:
        for p in load:
            p.kill()
            p.wait(timeout=10)
    peak = max(errors)
    return [
        Result(
            name="pointing_lag: peak TRACK pointing error, 10x warp, 2 CPU-bound loads",
            candidate="peak following error (deg)",
            candidate_value=peak,
            baseline="receiver field of view half-angle (deg)",
            baseline_value=FOV_DEG,
            unit="deg",
            higher_is_better=False,
            target_ratio=2.0,
            extra=extra,
        )
    ]
