"""`qgs bundle`: verify, export and recover pass bundles.

Exit codes: 0 OK; 1 the bundle is corrupt or incomplete (the message names the chunk);
2 usage errors (no such directory, not a bundle, output exists). Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from station.recording.errors import ChunkError, RecordingError

EXIT_OK, EXIT_CORRUPT, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bundle", help="verify, export or recover a recorded pass bundle")
    parser.set_defaults(func=lambda _args: _usage(parser))
    bundle_sub = parser.add_subparsers(dest="bundle_command", metavar="<subcommand>")

    verify = bundle_sub.add_parser("verify", help="check every chunk CRC and manifest hash")
    verify.add_argument("bundle_dir", type=Path, help="pass bundle directory")
    verify.set_defaults(func=run_verify)

    export = bundle_sub.add_parser("export", help="export events to an interchange format")
    export.add_argument("bundle_dir", type=Path, help="pass bundle directory")
    export.add_argument("--format", required=True, choices=["photon-hdf5"], help="output format")
    export.add_argument("-o", "--output", required=True, type=Path, help="output file (.h5)")
    export.add_argument("--force", action="store_true", help="overwrite an existing output")
    export.set_defaults(func=run_export)

    recover = bundle_sub.add_parser(
        "recover", help="report what a bundle left by a crash still holds"
    )
    recover.add_argument("bundle_dir", type=Path, help="pass bundle directory")
    recover.set_defaults(func=run_recover)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print("qgs bundle: choose a subcommand: verify, export or recover", file=sys.stderr)
    return EXIT_USAGE


def _fail(code: int, message: str) -> int:
    print(f"qgs bundle: {message}", file=sys.stderr)
    return code


def _check_dir(path: Path) -> str | None:
    if not path.is_dir():
        return f"{path}: no such bundle directory"
    if not (path / "manifest.json").is_file():
        return f"{path}: no manifest.json here; not a pass bundle"
    return None


def run_verify(args: argparse.Namespace) -> int:
    from station.recording.verify import verify_bundle

    if problem := _check_dir(args.bundle_dir):
        return _fail(EXIT_USAGE, problem)
    try:
        report = verify_bundle(args.bundle_dir)
    except RecordingError as exc:
        return _fail(EXIT_CORRUPT, str(exc))
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_CORRUPT


def run_export(args: argparse.Namespace) -> int:
    from station.recording.photon_hdf5 import export_photon_hdf5

    if problem := _check_dir(args.bundle_dir):
        return _fail(EXIT_USAGE, problem)
    if args.output.exists() and not args.force:
        return _fail(EXIT_USAGE, f"{args.output}: output exists; pass --force to overwrite")
    if not args.output.parent.is_dir():
        return _fail(EXIT_USAGE, f"{args.output.parent}: output directory does not exist")
    try:
        n = export_photon_hdf5(args.bundle_dir, args.output, overwrite=args.force)
    except ChunkError as exc:
        return _fail(EXIT_CORRUPT, f"export stopped, corrupt chunk: {exc}")
    except RecordingError as exc:
        return _fail(EXIT_CORRUPT, str(exc))
    print(f"wrote {n} photons to {args.output} (Photon-HDF5)")
    return EXIT_OK


def run_recover(args: argparse.Namespace) -> int:
    from station.recording.reader import recover_bundle

    if not args.bundle_dir.is_dir():
        return _fail(EXIT_USAGE, f"{args.bundle_dir}: no such bundle directory")
    report = recover_bundle(args.bundle_dir)
    print(report.summary())
    return EXIT_OK if not report.problems and not report.unfinished else EXIT_CORRUPT
