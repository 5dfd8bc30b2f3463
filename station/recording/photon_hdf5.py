"""Export a pass bundle to Photon-HDF5 (v0.5) for interchange with photon-counting tools.

Layout follows the Photon-HDF5 reference (photon-hdf5.readthedocs.io; field list in
``Photon-HDF5/phconvert:phconvert/specs``): ``/photon_data/timestamps`` (int64) with
``timestamps_specs/timestamps_unit`` = 1e-12 s, ``/photon_data/detectors`` (uint8), the
``generic`` measurement type whose ``detectors_specs`` name the polarization channels, and
``/setup``, ``/identity``, ``/provenance``. Bundle provenance that Photon-HDF5 has no field
for (station, TLE, gaps, channel map) goes under ``/user/qgs``.

Four analyzer outputs are four polarization states: ``polarization_ch1..4`` = H, V, D, A
with ``/setup/detection_polarizations`` = 0, 90, 45, 135 deg.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from station.recording.atomic import fsync_dir, temp_name
from station.recording.chunkfile import read_header
from station.recording.errors import RecordingError
from station.recording.manifest import read_manifest, software_version
from station.recording.reader import chunk_files, iter_blocks
from station.recording.timescale import EVENT_TIME_ZERO

PHOTON_HDF5_VERSION = "0.5"
_POL_ANGLES_DEG = {"H": 0.0, "V": 90.0, "D": 45.0, "A": 135.0}


def export_photon_hdf5(bundle_dir: Path | str, out: Path | str, *, overwrite: bool = False) -> int:
    """Write ``out`` from the bundle's verified events; returns the number of photons.

    The file is written to a temporary sibling and renamed, so ``out`` is never partial.
    Raises :class:`RecordingError` (or its :class:`ChunkError`) on any bad input.
    """
    root, out_path = Path(bundle_dir), Path(out)
    manifest = read_manifest(root)
    if out_path.exists() and not overwrite:
        raise RecordingError("output exists; pass --force to overwrite", path=out_path)
    total = sum(read_header(path).count for _, path in chunk_files(root))
    tmp = temp_name(out_path)
    try:
        with h5py.File(tmp, "w") as h5:
            n, detector_counts, last_t = _write_photons(h5, root, total)
            _write_metadata(h5, root, manifest, detector_counts, last_t)
        os.replace(tmp, out_path)
        fsync_dir(out_path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecordingError(f"cannot write HDF5: {exc}", path=out_path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def _write_photons(h5: h5py.File, root: Path, total: int) -> tuple[int, dict[int, int], int]:
    photon = h5.create_group("photon_data")
    ts = photon.create_dataset("timestamps", shape=(total,), dtype="<i8")
    det = photon.create_dataset("detectors", shape=(total,), dtype="u1")
    photon.create_group("timestamps_specs")["timestamps_unit"] = 1e-12
    n = 0
    last_t = 0
    counts: dict[int, int] = {}
    for block in iter_blocks(root):
        k = len(block)
        if n + k > total:
            raise RecordingError("chunks changed while exporting", path=root)
        ts[n : n + k] = block.t_ps
        det[n : n + k] = block.channel
        per_channel = np.bincount(block.channel, minlength=256)
        for ch in np.flatnonzero(per_channel):
            counts[int(ch)] = counts.get(int(ch), 0) + int(per_channel[ch])
        if k:
            last_t = int(block.t_ps[-1])
        n += k
    if n != total:
        raise RecordingError("chunks changed while exporting", path=root)
    return n, counts, last_t


def _write_metadata(
    h5: h5py.File, root: Path, manifest: dict[str, Any], counts: dict[int, int], last_t: int
) -> None:
    station = manifest.get("station", "?")
    timescale = manifest.get("timescale") or {}
    epoch = timescale.get("tagger_epoch_utc") if isinstance(timescale, dict) else None
    h5["description"] = (
        f"qgs pass recording of station {station}, run start {manifest.get('run_start_utc')}; "
        f"entangled-photon downlink detections. {EVENT_TIME_ZERO}"
        + (f" (tagger epoch {epoch})" if epoch else "")
    )
    first_t = (manifest.get("events") or {}).get("first_t_ps")
    # the acquisition's own span, not the time since the tagger's epoch
    h5["acquisition_duration"] = (last_t - int(first_t or 0)) * 1e-12
    channel_map: dict[str, int] | None = manifest.get("channel_map")
    detectors = sorted(set(counts) | set((channel_map or {}).values()))

    specs = h5["photon_data"].create_group("measurement_specs")
    specs["measurement_type"] = "generic"
    det_specs = specs.create_group("detectors_specs")
    setup = h5.create_group("setup")
    setup["num_pixels"] = len(detectors)
    setup["num_spots"] = 1
    setup["num_spectral_ch"] = 1
    setup["num_split_ch"] = 1
    setup["modulated_excitation"] = False
    setup["excitation_alternated"] = [False]
    setup["lifetime"] = False
    if channel_map:
        order: list[str] = [k for k in ("H", "V", "D", "A") if k in channel_map]
        for i, key in enumerate(order, start=1):
            det_specs[f"polarization_ch{i}"] = np.array([channel_map[key]], dtype="u1")
        setup["num_polarization_ch"] = len(order)
        setup["detection_polarizations"] = [_POL_ANGLES_DEG[k] for k in order]
        labels = {v: k for k, v in channel_map.items()}
    else:
        setup["num_polarization_ch"] = 1
        labels = {}
    dets = setup.create_group("detectors")
    dets["id"] = np.array(detectors, dtype="u1")
    dets["counts"] = np.array([counts.get(d, 0) for d in detectors], dtype="i8")
    dets["label"] = [labels.get(d, f"ch{d}") for d in detectors]
    if channel_map:
        dets["polarization_ch"] = np.array(
            [order.index(labels[d]) + 1 if d in labels else 0 for d in detectors], dtype="u1"
        )

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    identity = h5.create_group("identity")
    identity["format_name"] = "Photon-HDF5"
    identity["format_version"] = PHOTON_HDF5_VERSION
    identity["format_url"] = "http://photon-hdf5.org/"
    identity["software"] = "qgs"
    identity["software_version"] = software_version()
    identity["creation_time"] = now
    identity["filename"] = "photon-hdf5 export of " + root.name
    provenance = h5.create_group("provenance")
    provenance["filename"] = str(root)
    provenance["software"] = str((manifest.get("software") or {}).get("name", "qgs"))
    provenance["software_version"] = str((manifest.get("software") or {}).get("version", "?"))
    provenance["creation_time"] = str(manifest.get("run_start_utc"))
    user = h5.create_group("user").create_group("qgs")
    user["station"] = str(station)
    user["run_start_utc"] = str(manifest.get("run_start_utc"))
    user["timescale"] = json.dumps(timescale)
    user["manifest_status"] = str(manifest.get("status"))
    user["tle"] = json.dumps(manifest.get("tle"))
    user["channel_map"] = json.dumps(channel_map)
    user["gaps"] = json.dumps((manifest.get("events") or {}).get("gaps", []))
