"""Closed-form expectations of the rehearsal worlds' night common windows (Markdown tables).

Run: .venv/bin/python docs/figures/rehearsal_expectations.py [--windows 4] [--step 1]

For each rehearsal world (configs/rig/delingha_lijiang_2017.toml, Bell mode;
configs/rig/delingha_nanshan_2020.toml, key mode) this lists the first night common windows
after the element epoch and, per window, what the world's own physics predicts without
drawing a photon (:func:`sim_hardware.world.closedform.expect_pass`, ideal pointing):
true coincidences C and accidentals A in the analysis window, the key-basis QBER, and CHSH
S with its statistical σ for the Bell configuration the campaigns use (Delingha's analyzer
at 0°/45°, the partner's half-wave plate turned by ``bell_offset_deg`` = 11.25°, i.e. its
analyzer at 22.5°/67.5°: tests/integration/station/test_two_station_analysis.py), for which
|S| = 2√2·V·C/(C + A). In key mode S is not measured; the column says what the same
window would give in Bell mode.

Windows are predicted as the coordinator predicts them (station.tracking, sgp4, each
station's limit = max(min_elevation_deg, horizon mask), from configs/stations/*.toml);
"night" = Sun below −12° (nautical twilight) at both stations at the window's start, middle
and end (the world's Sun). Each window is evaluated twice: over the whole common window,
and over its part with both stations at ≥ 15° (the network configs' min_common_elevation_deg).

The analysis window is the pipeline's ±3σ of the pair-time spread (coincidences.
window_from_width): σ² = two detectors' jitter σ² + 60 ps² of time-transfer noise (the
figure the two-station integration test uses). σ_S = 4·sqrt((1 − E²)/N) with N = C + A
spread evenly over the four passive setting pairs and |E| = V_eff/√2 for every setting
(physics.md §4: σ_S = sqrt(Σ (1 − E_k²)/N_k)).

This is a documentation tool, like a test: it imports both the station's predictor and the
truth-side world (DESIGN.md: only tests may import both), to show what a campaign should
measure in each window.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from drivers.config import load_toml  # noqa: E402
from sim_hardware.world import World, load_world_config  # noqa: E402
from sim_hardware.world.closedform import PassExpectation, expect_pass  # noqa: E402
from sim_hardware.world.config import jitter_sigma_ps  # noqa: E402
from station.config import load_station_config  # noqa: E402
from station.tracking.elements import load_elements, select  # noqa: E402
from station.tracking.passes import common_windows, find_passes  # noqa: E402

TIMING_NOISE_PS = 60.0
K_SIGMA = 3.0
NIGHT_SUN_DEG = -12.0
MIN_COMMON_DEG = 15.0
WORLDS = (
    ("delingha_lijiang_2017.toml", "bell", "micius.tle"),
    ("delingha_nanshan_2020.toml", "key", "micius.tle"),
)


@dataclass(frozen=True)
class Row:
    start_s: float
    end_s: float
    max_el_deg: tuple[float, float]
    full: PassExpectation
    above: PassExpectation | None  #: the part with both stations >= MIN_COMMON_DEG


def _utc(t: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def window_ps(world: World) -> float:
    """The pipeline's ±3σ window for the world's detectors (ps, full width)."""
    sigma = math.sqrt(
        sum(jitter_sigma_ps(s.detectors) ** 2 for s in world.config.stations) + TIMING_NOISE_PS**2
    )
    return math.ceil(2.0 * K_SIGMA * sigma)


def sigma_s(e: PassExpectation) -> float:
    """Statistical σ of S over the four passive setting pairs (see the module docstring)."""
    n = e.coincidences + e.accidentals
    if n <= 0:
        return math.inf
    v_eff = e.s_value / (2.0 * math.sqrt(2.0))
    return 4.0 * math.sqrt((1.0 - v_eff**2 / 2.0) / n)


def night_windows(
    world: World, tle: Path, names: list[str], count: int, days: float
) -> list[tuple[float, float]]:
    """The first ``count`` night common windows within ``days`` of the element epoch."""
    elements = select(load_elements(tle), norad_id=41731)
    sites = [load_station_config(ROOT / "configs/stations" / f"{n}.toml").site for n in names]
    passes = [find_passes(elements.satrec, s, elements.epoch_s, days) for s in sites]
    out = []
    for w in common_windows(passes):
        times = (w.start_s, 0.5 * (w.start_s + w.end_s), w.end_s)
        if all(world.truth(n, t)["sun_alt_deg"] < NIGHT_SUN_DEG for n in names for t in times):
            out.append((w.start_s, w.end_s))
    return out[:count]


def above(world: World, names: list[str], t0: float, t1: float) -> tuple[float, float] | None:
    """The span of [t0, t1) (1 s grid) where both stations see the satellite >= 15 deg."""
    ok = [
        t
        for t in (t0 + k for k in range(int(t1 - t0) + 1))
        if all(world.geometric_line_of_sight(n, t).el_deg >= MIN_COMMON_DEG for n in names)
    ]
    return (ok[0], ok[-1] + 1.0) if ok else None


def evaluate(
    rig: str, tle: str, count: int, step_s: float, days: float = 2.0
) -> tuple[World, list[Row]]:
    world = World(load_world_config(load_toml(ROOT / "configs/rig" / rig)), seed=0)
    names = world.station_names
    w_ps = window_ps(world)
    rows = []
    for t0, t1 in night_windows(world, ROOT / "configs/satellites" / tle, names, count, days):
        full = expect_pass(
            world, t0, t1, window_ps=w_ps, timing_noise_ps=TIMING_NOISE_PS, step_s=step_s
        )
        span = above(world, names, t0, t1)
        part = (
            None
            if span is None
            else expect_pass(
                world, *span, window_ps=w_ps, timing_noise_ps=TIMING_NOISE_PS, step_s=step_s
            )
        )
        grid = [t0 + k for k in range(int(t1 - t0) + 1)]
        max_el = tuple(max(world.geometric_line_of_sight(n, t).el_deg for t in grid) for n in names)
        rows.append(Row(t0, t1, (max_el[0], max_el[1]), full, part))
    return world, rows


def _cells(e: PassExpectation | None) -> str:
    if e is None:
        return "| – | – | – | – | – |"
    ss = sigma_s(e)
    return (
        f"| {e.t1 - e.t0:.0f} | {e.coincidences:.0f} | {e.accidentals:.1f} "
        f"| {100 * e.qber:.2f} | {e.s_value:.3f} ± {ss:.3f} ({(e.s_value - 2) / ss:.1f} σ) |"
    )


def table(rig: str, mode: str, world: World, rows: list[Row]) -> str:
    names = world.station_names
    src = world.config.source
    st = world.config.stations
    lines = [
        f"### {rig} ({mode} mode)",
        "",
        f"{names[0]} + {names[1]}; source {src.pair_rate_hz:.3g} pairs/s, V = {src.visibility}; "
        f"optics loss {st[0].optics_loss_db} / {st[1].optics_loss_db} dB; window "
        f"{window_ps(world):.0f} ps; S for the Bell settings (key mode: what Bell mode would "
        "give).",
        "",
        "| night window (UTC) | max el (deg) | whole window: s | C | A | QBER (%) | S ± σ "
        f"| both ≥ {MIN_COMMON_DEG:.0f}°: s | C | A | QBER (%) | S ± σ |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {_utc(r.start_s)}–{_utc(r.end_s, '%H:%M:%S')} "
            f"| {r.max_el_deg[0]:.1f} / {r.max_el_deg[1]:.1f} "
            + _cells(r.full)
            + _cells(r.above)[1:]
        )
    c = sum(r.full.coincidences for r in rows)
    a = sum(r.full.accidentals for r in rows)
    lines += ["", f"Campaign over these windows: C = {c:.0f}, A = {a:.1f} (whole windows)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=4, help="night windows per world (default 4)")
    p.add_argument("--step", type=float, default=1.0, help="integration step (s)")
    p.add_argument("--days", type=float, default=2.0, help="search span after the epoch (days)")
    args = p.parse_args(argv)
    out = []
    for rig, mode, tle in WORLDS:
        world, rows = evaluate(rig, tle, args.windows, args.step, args.days)
        out.append(table(rig, mode, world, rows))
    print("\n\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
