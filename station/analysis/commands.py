"""`qgs analyze`: two stations' pass bundles → offset, coincidences, QBER, S and key.

    qgs analyze BUNDLE_A BUNDLE_B [BUNDLE_A2 BUNDLE_B2 ...] [--json OUT|-] [--report PNG]
                [--key KEY.bin] [--force] [--pair-rate-hz R]
    qgs analyze --campaign DIR ...

Bundles are taken in pairs (A then B), or found under a campaign directory and paired by
pass (different stations, overlapping passes). In key mode the sifted bits of every pair go
into one budget (the finite-key length needs many passes' worth of bits). Every failure a
user can meet prints one sentence and exits with its own code (:mod:`station.analysis.errors`:
11 unusable bundle, 12 bundles that do not belong together, 13 missing metadata, 14 no time
reference, 15 flat correlation, 16 output exists, 17 key distillation failed; 2 usage).
No output file is overwritten without ``--force``.

Each pair also gets the fibre comparison (:mod:`station.analysis.fibre`): the two-downlink
loss in km of standard fibre and what the same source would give through fibre between the
stations. The bundles do not record the source's pair rate: ``--pair-rate-hz`` gives it,
default the rig's 5.9e6 pairs/s (physics.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from station.analysis.errors import AnalysisError, BundlesMismatch, OutputExists

log = logging.getLogger(__name__)


def _outputs(args: argparse.Namespace) -> list[Path]:
    paths = [Path(p) for p in (args.json, args.report, args.key) if p and p != "-"]
    if args.key:
        paths.append(Path(str(args.key) + ".sha256"))
    return paths


def _check_outputs(args: argparse.Namespace) -> None:
    if args.force:
        return
    for path in _outputs(args):
        if path.exists():
            raise OutputExists(f"{path} exists; pass --force to overwrite it")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def find_bundles(directory: Path) -> list[Path]:
    """Every pass bundle (a directory with a manifest.json) under ``directory``."""
    return sorted(p.parent for p in directory.rglob("manifest.json"))


def pair_bundles(paths: list[Path]) -> list[tuple[Path, Path]]:
    """Pair bundles of different stations whose passes overlap (campaign directories)."""
    from station.analysis.bundles import load_station

    meta = []
    for p in paths:
        st = load_station(p, verify=False)
        meta.append((p, st.station, st.aos_posix or 0.0, st.los_posix or 0.0))
    pairs: list[tuple[Path, Path]] = []
    used: set[Path] = set()
    for i, (p, name, aos, los) in enumerate(meta):
        if p in used:
            continue
        for q, other, aos2, los2 in meta[i + 1 :]:
            if q in used or other == name:
                continue
            if min(los, los2) > max(aos, aos2):
                pairs.append((p, q) if name < other else (q, p))
                used.update((p, q))
                break
    if not pairs:
        raise BundlesMismatch(
            "no two bundles of different stations with overlapping passes were found"
        )
    return pairs


def _text(result: Any, *, pair_rate_hz: float | None = None) -> str:
    from station.analysis.fibre import fibre_from_result

    r = result
    q, s = r.summary.qber, r.summary.chsh
    lines = [
        f"{r.a.station} + {r.b.station}: {r.coincidences} coincidences "
        f"({r.accidentals.mean:.1f} accidental) in ±{r.window_ps / 2:.0f} ps over "
        f"{r.duration_s:.0f} s"
        + ("  [PARTIAL: " + "; ".join(r.partial_reasons) + "]" if r.partial else ""),
        f"  offset {r.estimate.offset_ps:.0f} ps (residual after PPS and orbit prior), "
        f"peak {r.estimate.significance:.1f} sigma, global p {r.estimate.p_global:.1e}, "
        f"width {r.estimate.width_ps:.0f} ps",
    ]
    if q is not None:
        lines.append(
            f"  QBER {q.qber * 100:.2f} ± {q.sigma_qber * 100:.2f} % "
            f"(visibility {q.visibility:.3f}; "
            + ", ".join(f"basis {b.arm_a}{b.arm_b}: {b.qber * 100:.1f} %" for b in q.bases)
            + ")"
        )
    if s is not None:
        lines.append(
            f"  CHSH S = {s.s:.3f} ± {s.sigma_s:.3f} ({s.violation_sigma:.1f} sigma "
            f"{'above' if s.violation_sigma > 0 else 'below'} the local bound 2)"
        )
    if r.locality is not None:
        lines.append(
            f"  locality: {r.locality.fraction_spacelike * 100:.0f} % space-like, min margin "
            f"{r.locality.min_ps / 1e6:.2f} µs of {r.locality.light_time_ps / 1e6:.0f} µs"
        )
    fibre = fibre_from_result(r, pair_rate_hz=pair_rate_hz)
    lines.append(
        "  fibre: no true coincidences over link time" if fibre is None else f"  {fibre.summary()}"
    )
    lines.extend(f"  note: {n}" for n in r.notes)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from station.analysis.bundles import load_station
    from station.analysis.key import KeyParams
    from station.analysis.pipeline import analyze_pair, distill_key

    pair_rate: float | None = getattr(args, "pair_rate_hz", None)
    try:
        if args.campaign:
            pairs = pair_bundles(find_bundles(Path(args.campaign)))
        else:
            if len(args.bundles) < 2 or len(args.bundles) % 2:
                print(
                    "qgs analyze: give bundles in pairs (A B [A B ...]) or --campaign DIR",
                    file=sys.stderr,
                )
                return 2
            it = iter(Path(b) for b in args.bundles)
            pairs = list(zip(it, it, strict=True))
        _check_outputs(args)
        results = []
        for pa, pb in pairs:
            r = analyze_pair(load_station(pa), load_station(pb))
            results.append(r)
            if args.json != "-":
                print(_text(r, pair_rate_hz=pair_rate), flush=True)
        key = distill_key(results, params=KeyParams(), seed=args.seed)
        if key is not None and args.json != "-":
            if key.no_key_reason:
                print(f"key: {key.no_key_reason}")
            else:
                print(
                    f"key: {key.secure_length} secure bits from {key.n_sifted} sifted "
                    f"(QBER {key.qber_sample * 100:.2f} %, f {key.f_ec:.3f}); "
                    f"sha256 {key.key_sha256}"
                )
        _write_outputs(args, results, key)
    except AnalysisError as exc:
        print(f"qgs analyze: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


def _write_outputs(args: argparse.Namespace, results: list[Any], key: Any) -> None:
    from station.analysis.schema import analysis_to_json

    pair_rate: float | None = getattr(args, "pair_rate_hz", None)

    if args.json:
        doc = analysis_to_json(
            results,
            key,
            options={"seed": args.seed, "pair_rate_hz": pair_rate},
            pair_rate_hz=pair_rate,
        )
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            _atomic_write(Path(args.json), text.encode())
    if args.report:
        from station.analysis.report import write_report

        write_report(results[0], Path(args.report), key=key, pair_rate_hz=pair_rate)
        if len(results) > 1:
            for i, r in enumerate(results[1:], start=2):
                path = Path(args.report)
                write_report(
                    r,
                    path.with_name(f"{path.stem}-{i}{path.suffix}"),
                    key=key,
                    pair_rate_hz=pair_rate,
                )
    if args.key:
        if key is None or not key.secure_length:
            reason = "no key-mode coincidences" if key is None else key.no_key_reason
            raise AnalysisError(f"no key file written: {reason}")
        import numpy as np

        data = np.packbits(np.asarray(key.key_a, dtype=np.uint8)).tobytes()
        _atomic_write(Path(args.key), data)
        _atomic_write(
            Path(str(args.key) + ".sha256"),
            f"{key.key_sha256}  {Path(args.key).name}\n".encode(),
        )


def main_analyze(argv: list[str]) -> int:
    """Run ``qgs analyze`` with these arguments (for the demo and scripts)."""
    parser = argparse.ArgumentParser(prog="qgs analyze")
    sub = parser.add_subparsers()
    register(sub)
    return run(parser.parse_args(["analyze", *argv]))


def _pair_rate(text: str) -> float:
    """argparse type of ``--pair-rate-hz``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected pairs per second, got {text!r}") from None
    if not (value > 0.0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a pair rate > 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analyze",
        help="two stations' bundles -> clock offset, coincidences, QBER, CHSH S, key",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundles", nargs="*", help="pass bundles, in pairs: A B [A B ...]")
    p.add_argument("--campaign", help="analyse every pass pair found under this directory")
    p.add_argument("--json", help="write the versioned JSON result here ('-' = stdout)")
    p.add_argument("--report", help="write the one-page PNG report here")
    p.add_argument("--key", help="write the final key (packed bits) here, and KEY.sha256")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the key's sampling and hashing")
    p.add_argument(
        "--pair-rate-hz",
        type=_pair_rate,
        default=None,
        help="the source's pair rate for the fibre comparison (pairs/s; bundles do not record "
        "it; default the rig's 5.9e6)",
    )
    p.set_defaults(func=run)
