"""Run every ``bench/bench_*.py``, print the figures and append them to bench/results.json."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import platform
import subprocess
import sys
from pathlib import Path

from bench.harness import Result

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _format(r: Result) -> str:
    target = "" if r.target_ratio is None else f"  target >= {r.target_ratio:g}x"
    verdict = {None: "", True: "  OK", False: "  BELOW TARGET"}[r.meets_target]
    return (
        f"{r.name}\n"
        f"    candidate {r.candidate}: {r.candidate_value:,.4g} {r.unit}\n"
        f"    baseline  {r.baseline}: {r.baseline_value:,.4g} {r.unit}\n"
        f"    ratio {r.ratio:.3g}x{target}{verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("only", nargs="*", help="run only these bench modules (e.g. recorder)")
    args = parser.parse_args(argv)
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m.removeprefix("bench_") in args.only or m in args.only]
    results: list[Result] = []
    for name in modules:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        for result in module.run():
            print(_format(result), flush=True)
            results.append(result)
    record = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_revision": _git_revision(),
        "machine": {
            "node": platform.node(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": [r.to_json() for r in results],
    }
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(record)
    RESULTS.write_text(json.dumps(history, indent=2) + "\n")
    print(f"appended {len(results)} results to {RESULTS}")
    return 1 if any(r.meets_target is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
