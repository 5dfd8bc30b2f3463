"""A pass bundle being written: manifest, event chunks and the pointing/waveplate/rate logs.

One directory per station per pass (:func:`bundle_dir_name`)::

    <root>/<station>/<YYYYmmddTHHMMSSZ>[_<pass_id>]/
        manifest.json     status, provenance, config snapshot, chunk list, gaps, hashes
        events/chunk_00000000.qev ...   (station.recording.chunkfile)
        pointing.csv      t_s, commanded az/el, actual az/el (deg)
        waveplate.csv     t_s, plate, commanded_deg, actual_deg
        rates.csv         t_s, channel, rate_hz

Recording never depends on MQTT: the daemon calls the ``log_*`` methods and feeds
``events`` directly from the time tagger stream.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.clock import Clock
from drivers.datatypes import AltAz, ChannelMap
from station.recording.atomic import atomic_write_json
from station.recording.errors import RecordingError
from station.recording.linelog import LineLog
from station.recording.manifest import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    MANIFEST_NAME,
    software_version,
)
from station.recording.recorder import EVENTS_DIR, Recorder, RecordingSummary, sha256_file

log = logging.getLogger(__name__)

POINTING_LOG = "pointing.csv"
WAVEPLATE_LOG = "waveplate.csv"
RATES_LOG = "rates.csv"
POINTING_COLUMNS = ("t_s", "cmd_az_deg", "cmd_el_deg", "act_az_deg", "act_el_deg")
WAVEPLATE_COLUMNS = ("t_s", "plate", "commanded_deg", "actual_deg")
RATES_COLUMNS = ("t_s", "channel", "rate_hz")
FINAL_STATUSES = ("complete", "aborted", "failed")
#: manifest sections the daemon adds while recording (station.recording.timescale, lag marks)
ANNOTATIONS = ("timescale", "quality", "analyzer")


def bundle_dir_name(station: str, start_utc: datetime, pass_id: str | None = None) -> str:
    """Directory name of a pass bundle: ``<station>/<UTC start>[_<pass id>]``."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", station):
        raise ValueError(f"station name {station!r} must be letters, digits, '_', '.', '-'")
    stamp = start_utc.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"_{re.sub(r'[^A-Za-z0-9_.-]', '-', pass_id)}" if pass_id else ""
    return f"{station}/{stamp}{suffix}"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class BundleWriter:
    """Writes one pass bundle. Create with :meth:`create`; finish with :meth:`close`.

    Args (of :meth:`create`):
        bundle_dir: the directory to create (must not exist, or be empty).
        clock: control-plane clock (log flush cadence, chunk rotation, manifest times).
        station: station name.
        run_start_utc: the station clock when acquisition started. Event time 0 is the
            tagger's epoch, not this instant (docs/recording.md "Time base"; the manifest's
            ``timescale`` section, set with :meth:`annotate`, pins it to UTC).
        tle: the two TLE lines the pass was predicted from (or None).
        config: a JSON-serializable snapshot of the station configuration.
        channel_map: which tagger channels are H/V/D/A (marked in exports).
        info: free-form extra metadata (pass id, analyzer mode, campaign, ...).
        log_flush_s: how often the CSV logs are pushed to the kernel (clock seconds).
        recorder_options: passed to :class:`Recorder` (max_chunk_s, max_chunk_events, ...).
    """

    def __init__(
        self,
        bundle_dir: Path,
        manifest: dict[str, Any],
        events: Recorder,
        *,
        clock: Clock,
        log_flush_s: float,
    ) -> None:
        self.bundle_dir = bundle_dir
        self.events = events
        self._clock = clock
        self._manifest = manifest
        self._closed = False
        self._pointing = LineLog(
            bundle_dir / POINTING_LOG, POINTING_COLUMNS, clock=clock, flush_s=log_flush_s
        )
        self._waveplate = LineLog(
            bundle_dir / WAVEPLATE_LOG, WAVEPLATE_COLUMNS, clock=clock, flush_s=log_flush_s
        )
        self._rates = LineLog(
            bundle_dir / RATES_LOG, RATES_COLUMNS, clock=clock, flush_s=log_flush_s
        )

    @classmethod
    async def create(
        cls,
        bundle_dir: Path | str,
        *,
        clock: Clock,
        station: str,
        run_start_utc: datetime,
        tle: tuple[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
        channel_map: ChannelMap | None = None,
        info: Mapping[str, Any] | None = None,
        log_flush_s: float = 1.0,
        **recorder_options: Any,
    ) -> BundleWriter:
        path = Path(bundle_dir)
        if run_start_utc.tzinfo is None:
            raise ValueError("run_start_utc must be timezone-aware (UTC)")
        manifest: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "status": "recording",
            "software": {"name": "qgs", "version": software_version()},
            "station": station,
            "run_start_utc": _iso(run_start_utc),
            "run_start_posix": run_start_utc.timestamp(),
            "opened_utc": _iso(clock.now_datetime()),
            "closed_utc": None,
            "tle": list(tle) if tle else None,
            "config": dict(config or {}),
            "channel_map": None
            if channel_map is None
            else {"H": channel_map.h, "V": channel_map.v, "D": channel_map.d, "A": channel_map.a},
            "info": dict(info or {}),
            "logs": {
                "pointing": {"file": POINTING_LOG, "columns": list(POINTING_COLUMNS)},
                "waveplate": {"file": WAVEPLATE_LOG, "columns": list(WAVEPLATE_COLUMNS)},
                "rates": {"file": RATES_LOG, "columns": list(RATES_COLUMNS)},
            },
            "events": None,
            "files": {},
        }

        def start() -> None:
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise RecordingError(
                    "bundle directory already exists and is not empty; refusing to overwrite",
                    path=path,
                )
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RecordingError(
                    f"cannot create bundle directory: {exc.strerror or exc}", path=path
                ) from exc
            atomic_write_json(path / MANIFEST_NAME, manifest)

        await asyncio.to_thread(start)
        events = Recorder(path, clock=clock, **recorder_options)
        log.info("recording pass bundle %s", path)
        return cls(path, manifest, events, clock=clock, log_flush_s=log_flush_s)

    # ------------------------------------------------------------------ logs

    def log_pointing(self, t_s: float, commanded: AltAz, actual: AltAz) -> None:
        """One pointing sample: POSIX time (s), commanded and actual az/el (deg)."""
        self._pointing.append(
            (float(t_s), commanded.az_deg, commanded.el_deg, actual.az_deg, actual.el_deg)
        )

    def log_waveplate(
        self, t_s: float, commanded_deg: float, actual_deg: float, *, plate: str = "hwp"
    ) -> None:
        """One waveplate sample: POSIX time (s), commanded and actual angle (deg)."""
        if not re.fullmatch(r"[A-Za-z0-9_]+", plate):
            raise ValueError(f"plate name {plate!r} must be letters, digits or '_'")
        self._waveplate.append((float(t_s), plate, float(commanded_deg), float(actual_deg)))

    def log_rates(self, t_s: float, rates_hz: Mapping[int, float]) -> None:
        """Count rates per channel (Hz) at POSIX time ``t_s`` (one row per channel)."""
        for channel, rate in sorted(rates_hz.items()):
            self._rates.append((float(t_s), int(channel), float(rate)))

    def annotate(self, key: str, value: Any) -> None:
        """Set a top-level manifest section written at close (``timescale``, ``quality``).

        Only sections the format defines may be set, so provenance keys cannot be replaced.
        """
        if key not in ANNOTATIONS:
            raise ValueError(f"manifest section {key!r} is not one of {', '.join(ANNOTATIONS)}")
        self._manifest[key] = value

    # ------------------------------------------------------------------ close

    async def close(self, status: str = "complete") -> dict[str, Any]:
        """Finish events and logs, hash every file, write the final manifest; return it.

        ``status`` is ``complete``, ``aborted`` (pass cut short by the operator or safety)
        or ``failed``. If the recorder hit a disk error the status becomes ``failed`` and
        :class:`RecordingError` is raised after the manifest is written (when possible).
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
        if self._closed:
            return self._manifest
        self._closed = True
        error: RecordingError | None = None
        try:
            summary = await self.events.close()
        except RecordingError as exc:
            error = exc
            summary = await self.events.close()  # returns the cached summary
        for line_log in (self._pointing, self._waveplate, self._rates):
            try:
                await asyncio.to_thread(line_log.close)
            except RecordingError as exc:
                error = error or exc
        manifest = self._manifest
        manifest["status"] = "failed" if error or summary.error else status
        manifest["closed_utc"] = _iso(self._clock.now_datetime())
        manifest["events"] = events_section(summary)
        if error or summary.error:
            manifest["error"] = str(error or summary.error)
        manifest["files"] = await asyncio.to_thread(self._hash_files, summary)
        await asyncio.to_thread(atomic_write_json, self.bundle_dir / MANIFEST_NAME, manifest)
        log.info("closed pass bundle %s: %s", self.bundle_dir, manifest["status"])
        if error is not None:
            raise error
        return manifest

    def _hash_files(self, summary: RecordingSummary) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = {}
        for name in (POINTING_LOG, WAVEPLATE_LOG, RATES_LOG):
            path = self.bundle_dir / name
            if path.exists():
                files[name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        for chunk in summary.chunks:
            files[chunk.file] = {"sha256": chunk.sha256, "size": chunk.size}
        return files


def events_section(summary: RecordingSummary) -> dict[str, Any]:
    """The manifest's ``events`` object for a recording summary."""
    return {
        "directory": EVENTS_DIR,
        "chunk_format_version": 1,
        "chunks": [c.to_json() for c in summary.chunks],
        "total": summary.events,
        "blocks": summary.blocks,
        "counts_per_channel": {str(k): v for k, v in summary.counts_per_channel.items()},
        "first_t_ps": summary.first_t_ps,
        "last_t_ps": summary.last_t_ps,
        "gaps": [g.to_json() for g in summary.gaps],
        "time_regressions": summary.time_regressions,
    }
