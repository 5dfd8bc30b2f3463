"""``python -m reliability [--quick] [--only SECTION,...] [--out PATH]``.

Sections: matrix, crash, outage, fuzz, security, bridges, soak (default: all).

Runs the requested sections with real processes and regenerates docs/reliability.md (and
reliability/results.json) from this run only. ``--quick``: three matrix cells, four kill
trials, a 10 s broker outage, 200 fuzz cases per target, one attempt per security case,
a 2 h soak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from reliability import crash, fuzz, fuzz_drivers, matrix, outage, security, soak
from reliability.bridges import run_bridges
from reliability.broker import ROOT, mosquitto
from reliability.report import Results, as_json, from_json, render

SECTIONS = ("matrix", "crash", "outage", "fuzz", "security", "bridges", "soak")


def _revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=ROOT,
        ).stdout.strip()
        dirty = subprocess.run(
            # the run's own outputs (a --merge run starts from the previous ones) are not
            # changes to what was measured
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
            + [f":!{out}" for out in ("docs/reliability.md", "reliability/results.json")],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=ROOT,
        ).stdout
        return rev + (" (+ uncommitted changes)" if dirty.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


async def _run(args: argparse.Namespace, only: list[str], results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="qgs-reliability-") as tmp_name:
        tmp = Path(tmp_name)
        with mosquitto(tmp / "broker") as broker:
            if "matrix" in only:
                t0 = time.monotonic()
                results.matrix = await matrix.run_matrix(tmp / "matrix", broker.port, args.quick)
                results.wall_s["matrix"] = time.monotonic() - t0
            if "crash" in only:
                t0 = time.monotonic()
                results.crash = await crash.run_trials(
                    tmp / "crash", broker.port, 4 if args.quick else args.kills
                )
                results.wall_s["crash"] = time.monotonic() - t0
            if "outage" in only:  # its own broker: it stops and restarts it
                t0 = time.monotonic()
                results.outage = await outage.run_outage(
                    tmp / "outage", 10.0 if args.quick else outage.OUTAGE_S
                )
                results.wall_s["outage"] = time.monotonic() - t0
            if "soak" in only:
                t0 = time.monotonic()
                results.soak = await soak.run_soak(
                    tmp / "soak", broker.port, hours=2.0 if args.quick else args.soak_hours
                )
                results.wall_s["soak"] = time.monotonic() - t0
            if "fuzz" in only:
                t0 = time.monotonic()
                results.fuzz = await asyncio.to_thread(fuzz.run_all, broker.port, args.cases)
                # a reply case costs up to a few I/O timeouts: an eighth of the cases each
                results.fuzz += await asyncio.to_thread(
                    fuzz_drivers.fuzz_replies, max(50, args.cases // 8)
                )
                results.wall_s["fuzz"] = time.monotonic() - t0
        if "security" in only:
            t0 = time.monotonic()
            results.security = await security.run_security(1 if args.quick else 5)
            results.wall_s["security"] = time.monotonic() - t0
    if "bridges" in only:
        t0 = time.monotonic()
        results.bridges = await asyncio.to_thread(run_bridges)
        results.wall_s["bridges"] = time.monotonic() - t0


def merge_earlier(results: Results, earlier: Results, ran: list[str]) -> None:
    """Copy into ``results`` the sections of ``earlier`` that this run did not run."""
    for section in SECTIONS:
        if section in ran or getattr(earlier, section) is None:
            continue
        setattr(results, section, getattr(earlier, section))
        results.runs[section] = earlier.runs.get(
            section, f"{earlier.date_utc} at {earlier.revision}"
        )
        if section in earlier.wall_s:
            results.wall_s[section] = earlier.wall_s[section]
        if section == "fuzz":
            results.fuzz_cases = earlier.fuzz_cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small subset of every kind")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections of {', '.join(SECTIONS)}",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    parser.add_argument("--json", default=str(ROOT / "reliability" / "results.json"))
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="re-render --out from the results in --json (no new run; e.g. after a report "
        "change), keeping that run's date, revision and figures",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the sections of --json that this run does not run (each section then "
        "names the run it comes from)",
    )
    parser.add_argument("--kills", type=int, default=20, help="kill -9 trials (>= 20)")
    parser.add_argument(
        "--soak-hours", type=float, default=24.0, help="clock hours of the soak (default 24)"
    )
    parser.add_argument(
        "--cases", type=int, default=0, help="fuzz examples per target (default 2000, --quick 200)"
    )
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    args.cases = args.cases or (200 if args.quick else 2000)
    if args.render_only:
        loaded = from_json(json.loads(Path(args.json).read_text()))
        Path(args.out).write_text(render(loaded, loaded.fuzz_cases or args.cases))
        print(f"re-rendered {args.out} from {args.json}")
        return 0
    results = Results(
        command=" ".join(["python -m reliability", *(argv if argv is not None else sys.argv[1:])]),
        date_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        revision=_revision(),
        cores=os.cpu_count() or 0,
        load_before=os.getloadavg(),
        quick=args.quick,
        fuzz_cases=args.cases,
    )
    asyncio.run(_run(args, only, results))
    results.runs = {section: f"{results.date_utc} at {results.revision}" for section in only}
    if args.merge and Path(args.json).exists():
        merge_earlier(results, from_json(json.loads(Path(args.json).read_text())), only)
    Path(args.out).write_text(render(results, results.fuzz_cases or args.cases))
    Path(args.json).write_text(json.dumps(as_json(results), indent=1, default=str) + "\n")
    print(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
