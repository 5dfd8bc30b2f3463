"""`qgs passes` and `qgs track-plan`: pass tables, common windows and a planned-pass sky plot.

Time: ``--now`` takes an ISO-8601 UTC time (``2017-06-17T12:00:00Z``) or the word ``epoch``
(the element set's own epoch) and defaults to the current time. The element age is checked
against that time (warn > 3 days, refuse > ``--max-age-days``, default from the station's
``[tle] max_age_days``), so the shipped 2017 Micius TLE needs ``--now epoch`` or a 2017
date — exactly what a replayed campaign does::

    qgs passes --station configs/stations/delingha.toml --now epoch --days 2
    qgs passes --station configs/stations/delingha.toml --with configs/stations/lijiang.toml \\
        --now epoch --json
    qgs track-plan --station configs/stations/lijiang.toml --now epoch --pass 2 --png out.png

Every expected failure (bad config, malformed or stale elements, a pass the mount or the
safety policy cannot follow) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drivers.clock import SystemClock
from drivers.errors import ConfigError, LimitViolation
from station.config import StationConfig, load_station_config
from station.tracking.elements import (
    OrbitElements,
    iso,
    load_catalog,
    load_elements,
    parse_time,
    select,
)
from station.tracking.ephemeris import PropagationError
from station.tracking.passes import Pass, common_windows, find_passes
from station.tracking.planner import plan_for_pass, safety_gate
from station.tracking.safety import SafetyViolation
from station.tracking.sunmoon import moon_altaz, sun_altaz

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """An expected failure with a one-line message for the operator."""


def _guard(fn: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (ConfigError, LimitViolation, PropagationError, CommandError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--station", required=True, help="station config (configs/stations/*.toml)")
    p.add_argument(
        "--tle",
        help="element file (.tle/.txt, OMM .json/.xml) or catalog directory "
        "(default: the station's [tle] path)",
    )
    p.add_argument("--norad", type=int, help="NORAD id to pick from the file (default [tle])")
    p.add_argument(
        "--now",
        default=None,
        help="start time, ISO-8601 UTC, or 'epoch' for the element epoch (default: now)",
    )
    p.add_argument("--days", type=float, default=2.0, help="search span in days (default 2)")
    p.add_argument(
        "--max-age-days",
        type=float,
        default=None,
        help="refuse elements older than this at --now (default: the station's [tle])",
    )


def register(subparsers: Any) -> None:
    """Add ``passes`` and ``track-plan`` to the `qgs` argparse subparsers."""
    p = subparsers.add_parser("passes", help="predict passes (and common windows with --with)")
    _common(p)
    p.add_argument(
        "--with",
        dest="others",
        action="append",
        default=[],
        metavar="STATION_TOML",
        help="another station: print the common-visibility windows (repeatable)",
    )
    p.add_argument("--min-window-s", type=float, default=0.0, help="drop shorter windows")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_guard(cmd_passes))

    q = subparsers.add_parser("track-plan", help="plan one pass: wrap, keyhole, safety, plot")
    _common(q)
    q.add_argument(
        "--pass",
        dest="pass_index",
        type=int,
        default=0,
        help="which pass in the span (0 = first; default 0)",
    )
    q.add_argument("--png", type=Path, help="write a polar sky plot here")
    q.add_argument("--json", action="store_true", help="JSON summary")
    q.set_defaults(func=_guard(cmd_track_plan))


def _elements(args: argparse.Namespace, cfg: StationConfig) -> tuple[OrbitElements, float]:
    source = Path(args.tle) if args.tle else cfg.tle.path
    if source is None:
        raise CommandError(f"{cfg.source}: no [tle] path configured; give --tle FILE")
    pool = load_catalog(source) if source.is_dir() else load_elements(source)
    norad = args.norad if args.norad is not None else cfg.tle.norad_id
    if args.now is None:
        now = SystemClock().now()
    elif args.now.strip().lower() == "epoch":
        now = select(pool, norad_id=norad).epoch_s
    else:
        try:
            now = parse_time(args.now)
        except ValueError:
            raise CommandError(
                f"--now {args.now!r} is not an ISO-8601 time (e.g. 2017-06-17T12:00:00Z) or 'epoch'"
            ) from None
    elements = select(pool, norad_id=norad, now_s=now)
    max_age = args.max_age_days if args.max_age_days is not None else cfg.tle.max_age_days
    elements.check_age(now, max_age_days=max_age)
    if not (0 < args.days <= 30):
        raise CommandError(f"--days must be in (0, 30], got {args.days:g}")
    return elements, now


def cmd_passes(args: argparse.Namespace) -> int:
    cfg = load_station_config(args.station)
    others = [load_station_config(p) for p in args.others]
    elements, now = _elements(args, cfg)
    per_site = [find_passes(elements.satrec, c.site, now, args.days) for c in [cfg, *others]]
    windows = common_windows(per_site, min_duration_s=args.min_window_s) if others else []
    if args.json:
        if others:
            doc: Any = {
                "satellite": elements.name,
                "norad_id": elements.norad_id,
                "stations": {
                    c.name: [p.to_json() for p in ps]
                    for c, ps in zip([cfg, *others], per_site, strict=True)
                },
                "common_windows": [w.to_json() for w in windows],
            }
        else:
            doc = [p.to_json() for p in per_site[0]]
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"{elements.name} (NORAD {elements.norad_id}), epoch {iso(elements.epoch_s)}, "
        f"from {iso(now)} for {args.days:g} days"
    )
    for c, ps in zip([cfg, *others], per_site, strict=True):
        print(f"\n{c.name}: {len(ps)} passes")
        print(_table(ps))
    if others:
        names = " + ".join(c.name for c in [cfg, *others])
        print(f"\ncommon-visibility windows ({names}): {len(windows)}")
        for w in windows:
            print(
                f"  {iso(w.start_s)} .. {iso(w.end_s)}  {w.duration_s:6.1f} s  "
                f"{'night' if w.all_night else 'day'}"
            )
    return 0


def _table(ps: list[Pass]) -> str:
    head = (
        f"  {'AOS (UTC)':24} {'TCA':10} {'LOS':10} {'max el':>7} {'az aos/tca/los':>17} "
        f"{'sun el':>7} {'sun sep':>7} {'moon sep':>8}"
    )
    rows = [head]
    for p in ps:
        rows.append(
            f"  {iso(p.aos_s):24} {iso(p.tca_s)[11:19]:10} {iso(p.los_s)[11:19]:10} "
            f"{p.max_elevation_deg:7.2f} {p.aos_az_deg:5.0f}/{p.tca_az_deg:3.0f}/"
            f"{p.los_az_deg:3.0f}      {p.sun_el_at_tca_deg:7.1f} "
            f"{p.min_sun_separation_deg:7.1f} {p.min_moon_separation_deg:8.1f}"
            f"  {'night' if p.night else 'day'}"
        )
    return "\n".join(rows)


def cmd_track_plan(args: argparse.Namespace) -> int:
    cfg = load_station_config(args.station)
    elements, now = _elements(args, cfg)
    ps = find_passes(elements.satrec, cfg.site, now, args.days)
    if not ps:
        raise CommandError(
            f"no pass of {elements.name} above the limits of {cfg.name} within "
            f"{args.days:g} days of {iso(now)}"
        )
    if not 0 <= args.pass_index < len(ps):
        raise CommandError(f"--pass {args.pass_index} out of range: {len(ps)} passes found")
    chosen = ps[args.pass_index]
    plan = plan_for_pass(cfg, elements, chosen, check_safety=False)
    m = plan.mount
    gate = safety_gate(cfg)
    unsafe: SafetyViolation | None = None
    try:
        gate.check_slew(m.start, m.preposition, m.preposition_start_s)
        gate.check_trajectory(m.trajectory)
    except SafetyViolation as exc:
        unsafe = exc
    summary = {
        "station": cfg.name,
        "pass": chosen.to_json(),
        "samples": len(m.trajectory),
        "wrap_offset_deg": m.wrap_offset_deg,
        "axis_az_range_deg": [float(m.trajectory.az_deg.min()), float(m.trajectory.az_deg.max())],
        "axis_el_max_deg": float(m.trajectory.el_deg.max()),
        "keyhole": [[iso(a), iso(b)] for a, b in m.keyhole],
        "keyhole_strategy": m.strategy,
        "unobservable": [[iso(a), iso(b)] for a, b in m.unobservable()],
        "preposition": {
            "az_deg": m.preposition.az_deg,
            "el_deg": m.preposition.el_deg,
            "start": iso(m.preposition_start_s),
            "slew_s": m.preposition_slew_s,
        },
        "sun_time_s": plan.sun_time_s,
        "hwp_deg_range": [
            float(plan.polarization.hwp_deg.min()),
            float(plan.polarization.hwp_deg.max()),
        ],
        "max_range_rate_km_s": float(np.abs(plan.look.range_rate_km_s).max()),
        "safe": unsafe is None,
        "safety_violation": None if unsafe is None else str(unsafe),
    }
    if args.png:
        from station.tracking.plot import plot_pass

        mid = np.array([0.5 * (chosen.aos_s + chosen.los_s)])
        sun, moon = sun_altaz(mid, cfg.site), moon_altaz(mid, cfg.site)
        plot_pass(
            m,
            cfg.site,
            args.png,
            title=f"{cfg.name}: {elements.name} pass {iso(chosen.aos_s)[:19]} "
            f"max el {chosen.max_elevation_deg:.1f}°",
            sun=(float(sun.az_deg[0]), float(sun.el_deg[0])),
            moon=(float(moon.az_deg[0]), float(moon.el_deg[0])),
            sun_radius_deg=cfg.safety.sun_radius_deg,
            moon_radius_deg=cfg.safety.moon_radius_deg,
        )
        summary["png"] = str(args.png)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    if unsafe is not None:
        print(f"error: {unsafe}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m station.tracking.commands passes ...`` (until wired into `qgs`)."""
    parser = argparse.ArgumentParser(prog="python -m station.tracking.commands")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = args.func(args)
    assert isinstance(result, int)
    return result


if __name__ == "__main__":
    sys.exit(main())
