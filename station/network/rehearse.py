"""`qgs network rehearse`: a campaign of several windows on the rig, and its result table.

::

    qgs network rehearse --config configs/network/delingha_lijiang_2017.toml \\
        --rig configs/rig/delingha_lijiang_2017.toml --windows 3 --doc docs/campaigns.md

Each window runs as its own rig session (station/network/rehearsal.py) with the campaign's
coordinator in this process; the campaign directory collects the plan, each window's
analysis and result. At the end, key campaigns pool every window's sifted bits into one
finite-key budget (``qgs analyze --campaign``), and the result table (Markdown) is written
to the campaign directory and, with ``--doc``, between the campaign's markers in that file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from drivers.clock import WarpClock
from drivers.errors import ConfigError
from station.bus.connection import BrokerConfig
from station.bus.embedded import EmbeddedBroker
from station.network.config import NetworkConfig, load_network_config
from station.network.coordinator import Coordinator
from station.network.plan import Window, WindowStatus, predict_windows
from station.network.rehearsal import Session, rig_session, session_start_s, with_directory
from station.tracking.elements import OrbitElements, iso, parse_time

log = logging.getLogger(__name__)

TAIL_S = 900.0  #: clock s after the window's end that a session may still need (LOS, stow)
SessionHook = Callable[[Session, Coordinator], Coroutine[Any, Any, None]]


async def rehearse_window(
    cfg: NetworkConfig,
    elements: OrbitElements,
    rig_config: Path,
    broker: BrokerConfig,
    window: Window,
    rate: float,
    *,
    hook: SessionHook | None = None,
    rig_args: Sequence[str] = (),
    daemon_args: Mapping[str, Sequence[str]] | None = None,
) -> Window:
    """Run one window's session; the window as the coordinator left it."""
    start = session_start_s(cfg, elements, window)
    out = cfg.directory / "sessions" / window.id
    url = f"mqtt://{broker.host}:{broker.port}"
    with rig_session(
        cfg, rig_config, cfg.tle_path, url, out, start, rate, rig_args, daemon_args
    ) as session:
        clock = WarpClock.from_spec(session.spec)
        coordinator = Coordinator(cfg, clock, broker, elements, max_windows=1)
        serving = asyncio.create_task(coordinator.serve(), name=f"coordinator-{window.id}")
        helpers = [asyncio.create_task(hook(session, coordinator))] if hook else []
        bound = clock.to_wall(window.end_s + TAIL_S - start) + 60.0
        try:
            done, _ = await asyncio.wait({serving}, timeout=bound)
            if not done:
                log.error("window %s did not end within %.0f s; stopping", window.id, bound)
        finally:
            coordinator.request_stop()
            await asyncio.wait({serving}, timeout=60.0)
            for task in helpers:
                task.cancel()
            for outcome in await asyncio.gather(*helpers, return_exceptions=True):
                if isinstance(outcome, Exception):  # a hook that failed is said, not swallowed
                    log.error("session hook failed: %r", outcome)
        if serving.done() and not serving.cancelled() and serving.exception() is not None:
            raise serving.exception()  # type: ignore[misc]
    return next(w for w in coordinator.windows if w.id == window.id)


def campaign_windows(
    cfg: NetworkConfig, elements: OrbitElements, start_s: float, count: int
) -> list[Window]:
    """The first ``count`` bookable windows from ``start_s`` (conflicts left out)."""
    usable = [
        w
        for w in predict_windows(cfg, elements, start_s)
        if w.status is WindowStatus.PLANNED and w.start_s > start_s
    ]
    if len(usable) < count:
        raise ConfigError(
            f"only {len(usable)} usable common window(s) within {cfg.horizon_days:g} days of "
            f"{iso(start_s)}; raise [campaign] horizon_days or lower min_common_elevation_deg",
            source=cfg.source,
        )
    return usable[:count]


# --------------------------------------------------------------------------- the table


def _fmt(x: Any, spec: str, default: str = "–") -> str:
    return default if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _pm(x: Any, s: Any, spec: str, scale: float = 1.0) -> str:
    if x is None:
        return "–"
    return f"{x * scale:{spec}} ± {s * scale:{spec}}" if s is not None else f"{x * scale:{spec}}"


def result_table(cfg: NetworkConfig, windows: list[Window], pooled: dict[str, Any] | None) -> str:
    """The campaign's Markdown table, one row per window, and the campaign line under it."""
    rows = [
        "| window (UTC) | status | coincidences | pair rate (1/s) | S ± σ | QBER (%) "
        "| space-like | fibre equivalent (1550 nm) |",
        "|---|---|---:|---:|---|---|---|---|",
    ]
    s_values: list[tuple[float, float]] = []
    for w in windows:
        f = (w.result or {}).get("figures") or {}
        if f.get("s") is not None and f.get("s_sigma"):
            s_values.append((float(f["s"]), float(f["s_sigma"])))
        fibre = f.get("fibre") or {}
        km = fibre.get("equivalent_fibre_1550_km")
        reason = w.reason if w.reason is None or len(w.reason) <= 90 else w.reason[:89] + "…"
        status = w.status.value + (f" ({reason})" if reason else "")
        if f.get("qber") is None and f.get("qber_from_s") is not None:
            qber = _pm(f["qber_from_s"], f.get("qber_from_s_sigma"), ".1f", 100.0) + " (from S)"
        else:
            qber = _pm(f.get("qber"), f.get("qber_sigma"), ".1f", 100.0)
        rows.append(
            f"| {iso(w.start_s)[:16]} +{w.duration_s:.0f} s | {status} "
            f"| {_fmt(f.get('coincidences'), 'd')} | {_fmt(f.get('pair_rate_hz'), '.2f')} "
            f"| {_pm(f.get('s'), f.get('s_sigma'), '.3f')} | {qber} "
            f"| {_fmt(f.get('locality_fraction_spacelike'), '.0%')} "
            f"| {_fmt(km, '.0f')}{' km' if km is not None else ''} |"
        )
    lines = ["\n".join(rows), ""]
    if s_values:
        weights = [1.0 / s**2 for _, s in s_values]
        mean = sum(v * k for (v, _), k in zip(s_values, weights, strict=True)) / sum(weights)
        sigma = 1.0 / math.sqrt(sum(weights))
        lines.append(
            f"Campaign S (inverse-variance mean of {len(s_values)} window(s)): "
            f"{mean:.3f} ± {sigma:.3f}, {(mean - 2.0) / sigma:.1f} σ above the local bound 2."
        )
    if pooled is not None:
        key = pooled.get("key") or {}
        if (key.get("secure_length_bits") or 0) > 0:
            lines.append(
                f"Campaign key: {key['secure_length_bits']} secure bits from "
                f"{key['n_sifted']} sifted (QBER {key['qber_sample'] * 100:.2f} %, "
                f"ε_sec {key['eps_sec']:.0e})."
            )
        else:
            lines.append(f"Campaign key: none ({key.get('no_key_reason')}).")
    return "\n".join(lines) + "\n"


def splice(doc: Path, campaign: str, table: str) -> None:
    """Replace the text between ``<!-- campaign:<id> -->`` and ``<!-- /campaign:<id> -->``."""
    begin, end = f"<!-- campaign:{campaign} -->", f"<!-- /campaign:{campaign} -->"
    text = doc.read_text() if doc.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{table}{end}{tail}"
    else:
        text = f"{text.rstrip()}\n\n{begin}\n{table}{end}\n"
    doc.write_text(text)


def pooled_analysis(cfg: NetworkConfig) -> dict[str, Any] | None:
    """Key campaigns: every window's bundles through one finite-key budget."""
    if cfg.mode != "key":
        return None
    out = cfg.directory / "campaign-analysis.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "station.cli", "analyze"),
            *("--campaign", str(cfg.directory / "sessions"), "--json", str(out), "--force"),
        ],
        capture_output=True,
        text=True,
        timeout=cfg.coordinator.analysis_timeout_s,
    )
    if proc.returncode != 0:
        return {"key": {"no_key_reason": proc.stderr.strip().splitlines()[-1:]}}
    body: dict[str, Any] = json.loads(out.read_text())
    return body


# --------------------------------------------------------------------------- the command


async def rehearse(args: argparse.Namespace) -> int:
    cfg = load_network_config(args.config)
    if args.campaign_dir:
        cfg = with_directory(cfg, Path(args.campaign_dir))
    from station.network.commands import network_elements

    start = parse_time(args.start) if args.start else world_start(Path(args.rig))
    elements = network_elements(cfg, start)
    windows = campaign_windows(cfg, elements, start, args.windows)
    print(f"rehearsing {len(windows)} window(s) of campaign {cfg.campaign} at {args.rate:g}x")
    async with EmbeddedBroker() as broker:
        for w in windows:
            t0 = time.monotonic()
            done = await rehearse_window(cfg, elements, Path(args.rig), broker, w, args.rate)
            print(
                f"  {done.id}: {done.status.value}"
                + (f" ({done.reason})" if done.reason else "")
                + f"  [{time.monotonic() - t0:.0f} s wall]",
                flush=True,
            )
    table = result_table(cfg, _reload(cfg, windows), pooled_analysis(cfg))
    (cfg.directory / "results.md").write_text(table)
    print("\n" + table)
    if args.doc:
        splice(Path(args.doc), cfg.campaign, table)
        print(f"table written to {args.doc}")
    return 0


def _reload(cfg: NetworkConfig, windows: list[Window]) -> list[Window]:
    """The windows as the campaign directory has them (each session saved its outcome)."""
    from station.network.campaign import CampaignDir

    saved = {w.id: w for w in CampaignDir(cfg.directory, cfg.campaign).load_plan()}
    return [saved.get(w.id, w) for w in windows]


def world_start(rig: Path) -> float:
    from drivers.config import load_toml

    world = load_toml(rig).table("world")
    return parse_time(world.string("start_utc"))


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = actions.add_parser(
        "rehearse",
        help="run a campaign's windows on the emulated rig and write its result table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="network TOML (configs/network/*.toml)")
    p.add_argument("--rig", required=True, help="rig TOML of the same world (configs/rig/)")
    p.add_argument("--windows", type=int, default=3, help="how many common windows (default 3)")
    p.add_argument("--rate", type=float, default=10.0, help="warp rate (default 10)")
    p.add_argument("--start", help="first window after this UTC time (default: rig world start)")
    p.add_argument("--campaign-dir", help="overrides [campaign] directory")
    p.add_argument("--doc", help="also write the table into this Markdown file")
    p.set_defaults(func=_guard)


def _guard(args: argparse.Namespace) -> int:
    from station.network.commands import guard

    return guard(rehearse, args)
