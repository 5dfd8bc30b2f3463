"""The bundle manifest (``manifest.json``): what, where, when and the hash of every file.

Written atomically (:mod:`station.recording.atomic`) when recording starts, with status
``recording``, and again when it ends, with ``complete`` (or ``aborted``/``failed``). A
bundle whose manifest still says ``recording`` was left by a crash: see
:func:`station.recording.reader.recover_bundle`.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from station.recording.errors import RecordingError

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "qgs-pass-bundle"
BUNDLE_FORMAT_VERSION = 1
#: statuses a manifest can have; only the last three are final
STATUSES = ("recording", "complete", "aborted", "failed", "recovered")


def software_version() -> str:
    try:
        return version("quantum-ground-station")
    except PackageNotFoundError:
        return "unknown"


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """Load and minimally check ``manifest.json``; raises :class:`RecordingError`."""
    path = bundle_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError("no manifest.json: not a pass bundle", path=bundle_dir) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"cannot read manifest: {exc}", path=path) from exc
    except json.JSONDecodeError as exc:
        raise RecordingError(f"manifest is not valid JSON ({exc})", path=path) from exc
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise RecordingError(f"manifest is not a {BUNDLE_FORMAT} manifest", path=path)
    if data.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise RecordingError(
            f"bundle format version {data.get('format_version')!r} is not supported "
            f"(this qgs reads version {BUNDLE_FORMAT_VERSION})",
            path=path,
        )
    if data.get("status") not in STATUSES:
        raise RecordingError(
            f"manifest status {data.get('status')!r} is not one of {', '.join(STATUSES)}",
            path=path,
        )
    return data
