"""Export a pass bundle to Photon-HDF5 (v0.5) for interchange with photon-counting tools.

Layout and field descriptions follow the Photon-HDF5 0.5 reference (photon-hdf5.readthedocs.io;
the field list is ``phconvert/specs/photon-hdf5_specs.json``), so the reference reader
(``phconvert.hdf5.assert_valid_photon_hdf5``, strict about field names, types and TITLEs)
accepts the file and PyTables reads every node:

- ``/photon_data/timestamps`` (int64, ``timestamps_specs/timestamps_unit`` = 1e-12 s) and
  ``/photon_data/detectors`` (uint8, the tagger channel of every event, PPS edges included);
- ``measurement_specs``: the ``generic`` measurement type; ``detectors_specs/polarization_chN``
  name the analyzer outputs (N = 1..4 for H, V, D, A, with ``/setup/detection_polarizations``
  = 0, 90, 45, 135 deg) and ``detectors_specs/non_photon_id1`` the PPS input, which carries no
  photons (``/setup/num_pixels`` counts photon detectors only);
- ``/setup``: one spot, one spectral and split channel, one CW-pumped, not alternated
  source (the satellite's photon-pair source), no lifetime; ``/setup/detectors`` has the
  ``id``, ``label`` and ``counts`` of every channel in ``detectors``;
- ``/identity``, ``/provenance`` (the bundle), ``/description`` (what event time 0 is) and
  ``/acquisition_duration`` (last - first event).

Every field carries its spec description as the ``TITLE`` attribute; strings are fixed-length
bytes and booleans 0/1 (PyTables reads neither variable-length strings nor h5py's boolean
enum). Bundle provenance Photon-HDF5 has no field for (station, TLE, gaps, timescale, channel
map) goes under ``/user/qgs`` (free-form in the spec, still fixed-length strings).

The events are streamed chunk by chunk with h5py, so a long pass is never held in memory;
phconvert is only a test dependency.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from station.recording.atomic import fsync_dir, temp_name
from station.recording.chunkfile import read_header
from station.recording.errors import RecordingError
from station.recording.manifest import read_manifest, software_version
from station.recording.reader import chunk_files, iter_blocks
from station.recording.timescale import EVENT_TIME_ZERO

PHOTON_HDF5_VERSION = "0.5"
_POL_ANGLES_DEG = {"H": 0.0, "V": 90.0, "D": 45.0, "A": 135.0}
PPS_LABEL = "PPS"

#: ordinals as the reference implementation spells them in enumerated descriptions
#: (phconvert 0.10 writes and checks "thrid"; its strict TITLE check needs the same text)
_NTH = {1: "first", 2: "second", 3: "thrid", 4: "fourth"}

#: Photon-HDF5 0.5 field descriptions (TITLE attributes), verbatim from the spec's field list
_TITLES: dict[str, str] = {
    "/": "A file format for photon-counting detector based single-molecule spectroscopy "
    "experiments.",
    "/acquisition_duration": "Measurement duration in seconds.",
    "/description": "A user-defined comment describing the data file.",
    "/format_name": "Name of the file format.",
    "/format_version": "Version for the Photon-HDF5 format.",
    "/photon_data": "Group containing arrays of photon-data.",
    "/photon_data/timestamps": "Array of photon timestamps. Units specified in timestamps_units "
    "(defined in timestamps_specs/).",
    "/photon_data/detectors": "Array of pixel IDs for each timestamp.",
    "/photon_data/timestamps_specs": "Specifications for timestamps.",
    "/photon_data/timestamps_specs/timestamps_unit": "Value of 1-unit timestamp-increment in "
    "seconds.",
    "/photon_data/measurement_specs": "Metadata necessary for interpretation of the particular "
    "type of measurement.",
    "/photon_data/measurement_specs/measurement_type": "Name of the measurement the data "
    "represents.",
    "/photon_data/measurement_specs/detectors_specs": "Mapping between the pixel IDs and the "
    "detection channels.",
    "/photon_data/measurement_specs/detectors_specs/non_photon_id1": "Detector ids of non "
    "photon events as they apppear in /photon_data/detectors",
    "/setup": "Information about the experimental setup.",
    "/setup/num_pixels": "Total number of detector pixels.",
    "/setup/num_spots": 'Number of excitation (or detection) "spots" in the sample.',
    "/setup/num_spectral_ch": "Number of distinct spectral bands which are acquired.",
    "/setup/num_polarization_ch": "Number of distinct polarization states which are acquired.",
    "/setup/num_split_ch": "Number of distinct detection channels detecting the same spectral "
    "band and polarization. This value is > 1 when using a non-polarizing beam splitter.",
    "/setup/modulated_excitation": "True (i.e. 1) if there is any form of excitation "
    "modulation of excitation wavelength (as in us-ALEX or PAX) or polarization. This field is "
    "also True for pulse-interleaved excitation (PIE) or ns-ALEX measurements.",
    "/setup/excitation_alternated": "New in version 0.5. Indicates whether each excitation "
    "source is alternated (True, or 1) or not alternated (False, or 0).",
    "/setup/lifetime": "True (i.e. 1) if the measurement includes a nanotimes array of photon "
    "arrival times with respect to a laser pulse (as in TCSPC measurements).",
    "/setup/excitation_cw": "For each excitation source, this field indicates whether "
    "excitation is continuous wave (CW), True (i.e. 1), or pulsed, False (i.e. 0).",
    "/setup/detection_polarizations": "Polarization angles (in degrees) for each detected "
    "polarization.",
    "/setup/detectors": "Metadata relative to each detector's pixel. Each field is an array "
    "with size equal to the number of the detectors.",
    "/setup/detectors/id": "Detector IDs as they appear on /photon_data/detectors.",
    "/setup/detectors/label": "Labels (strings) describing each detector.",
    "/setup/detectors/counts": "Total number of counts detected by each detector.",
    "/identity": "Information about the Photon-HDF5 data file.",
    "/identity/format_name": "Name of the file format.",
    "/identity/format_version": "Version for the Photon-HDF5 format.",
    "/identity/format_url": "Official URL for the Photon-HDF5 format.",
    "/identity/software": "Name of the software used to create the current Photon-HDF5 file.",
    "/identity/software_version": "Version of the software used to create current the "
    "Photon-HDF5 file.",
    "/identity/creation_time": "Creation time of the current Photon-HDF5 file.",
    "/identity/filename": "Original file name of the current Photon-HDF5 file (i.e. file name "
    "at creation time).",
    "/identity/filename_full": "Original file name (with full path) of the current Photon-HDF5 "
    "file (i.e. full file name at creation time).",
    "/provenance": "Information about the original data file.",
    "/provenance/filename": "File name of the original data file before conversion to Photon-HDF5.",
    "/provenance/filename_full": "File name (with full path) of the original data file before "
    "conversion to Photon-HDF5.",
    "/provenance/creation_time": "Creation time of the original data file.",
    "/provenance/software": "Software used to save the original data file.",
    "/provenance/software_version": "Version of the software used to save the original data file.",
    "/user": "User-defined fields.",
    "/user/qgs": "qgs pass-bundle provenance with no Photon-HDF5 field (JSON strings).",
}
for _n, _nth in _NTH.items():
    _TITLES[f"/photon_data/measurement_specs/detectors_specs/polarization_ch{_n}"] = (
        f"Pixel IDs for the {_nth} polarization channel."
    )


def export_photon_hdf5(bundle_dir: Path | str, out: Path | str, *, overwrite: bool = False) -> int:
    """Write ``out`` from the bundle's verified events; returns the number of events written.

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
            _title(h5)
            n, counts, span_ps = _write_photons(h5, root, total)
            _write_metadata(h5, root, out_path, manifest, counts, span_ps)
        os.replace(tmp, out_path)
        fsync_dir(out_path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecordingError(f"cannot write HDF5: {exc}", path=out_path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def _title(node: h5py.Group | h5py.Dataset) -> None:
    name = node.name or "/"
    node.attrs["TITLE"] = np.bytes_(_TITLES.get(name, " ").encode())  # " ": as phconvert


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    group = parent.create_group(name)
    _title(group)
    return group


def _put(parent: h5py.Group, name: str, value: Any) -> None:
    """A dataset with its spec TITLE: str becomes fixed-length bytes, bool becomes 0/1."""
    data: Any
    if isinstance(value, str):
        data = np.bytes_(value.encode() or b" ")
    elif isinstance(value, bool):
        data = np.uint8(value)
    elif isinstance(value, list) and value and all(isinstance(v, bool) for v in value):
        data = np.array(value, dtype="u1")
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        data = np.array([v.encode() for v in value], dtype=bytes)  # fixed-length S<n>
    else:
        data = value
    parent[name] = data
    node = parent[name]
    _title(node)
    if node.ndim == 0:
        # PyTables then reads a scalar back as a Python value (bytes for strings), as it
        # does for the files phconvert writes, not as a 0-d array
        node.attrs["FLAVOR"] = np.bytes_(b"python")


def _write_photons(h5: h5py.File, root: Path, total: int) -> tuple[int, dict[int, int], int]:
    photon = _group(h5, "photon_data")
    ts = photon.create_dataset("timestamps", shape=(total,), dtype="<i8")
    det = photon.create_dataset("detectors", shape=(total,), dtype="u1")
    _title(ts)
    _title(det)
    _put(_group(photon, "timestamps_specs"), "timestamps_unit", 1e-12)
    n = 0
    first_t: int | None = None
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
            if first_t is None:
                first_t = int(block.t_ps[0])
            last_t = int(block.t_ps[-1])
        n += k
    if n != total:
        raise RecordingError("chunks changed while exporting", path=root)
    # the acquisition's own span, not the time since the tagger's epoch
    return n, counts, 0 if first_t is None else last_t - first_t


def _pps_channel(timescale: dict[str, Any], channel_map: dict[str, int] | None) -> int | None:
    """The recorded PPS input (manifest ``timescale.pps_channel``), if it is a usable id."""
    pps = timescale.get("pps_channel")
    if not isinstance(pps, int) or isinstance(pps, bool) or not 0 <= pps <= 255:
        return None
    if pps in (channel_map or {}).values():
        return None  # an analyzer output cannot also be the PPS input
    return pps


def _ids(values: list[int]) -> npt.NDArray[np.uint8]:
    return np.array(values, dtype="u1")


def _write_metadata(
    h5: h5py.File,
    root: Path,
    out_path: Path,
    manifest: dict[str, Any],
    counts: dict[int, int],
    span_ps: int,
) -> None:
    station = manifest.get("station", "?")
    timescale = manifest.get("timescale") or {}
    timescale = timescale if isinstance(timescale, dict) else {}
    epoch = timescale.get("tagger_epoch_utc")
    _put(
        h5,
        "description",
        f"qgs pass recording of station {station}, run start {manifest.get('run_start_utc')}; "
        f"entangled-photon downlink detections. {EVENT_TIME_ZERO}"
        + (f" (tagger epoch {epoch})" if epoch else ""),
    )
    _put(h5, "acquisition_duration", span_ps * 1e-12)
    _put(h5, "format_name", "Photon-HDF5")
    _put(h5, "format_version", PHOTON_HDF5_VERSION)

    channel_map: dict[str, int] | None = manifest.get("channel_map")
    pps = _pps_channel(timescale, channel_map)
    detectors = sorted(
        set(counts) | set((channel_map or {}).values()) | (set() if pps is None else {pps})
    )
    labels = {v: k for k, v in (channel_map or {}).items()}
    if pps is not None:
        labels[pps] = PPS_LABEL

    specs = _group(h5["photon_data"], "measurement_specs")
    _put(specs, "measurement_type", "generic")
    det_specs = _group(specs, "detectors_specs")
    order: list[str] = [k for k in ("H", "V", "D", "A") if k in (channel_map or {})]
    for i, key in enumerate(order, start=1):
        _put(det_specs, f"polarization_ch{i}", _ids([(channel_map or {})[key]]))
    if pps is not None:
        _put(det_specs, "non_photon_id1", _ids([pps]))

    setup = _group(h5, "setup")
    _put(setup, "num_pixels", len([d for d in detectors if d != pps]))
    _put(setup, "num_spots", 1)
    _put(setup, "num_spectral_ch", 1)
    _put(setup, "num_polarization_ch", max(len(order), 1))
    _put(setup, "num_split_ch", 1)
    _put(setup, "modulated_excitation", False)
    _put(setup, "lifetime", False)
    # one source: the satellite's CW-pumped photon-pair source, not alternated
    _put(setup, "excitation_cw", [True])
    _put(setup, "excitation_alternated", [False])
    if order:
        _put(setup, "detection_polarizations", [_POL_ANGLES_DEG[k] for k in order])
    dets = _group(setup, "detectors")
    _put(dets, "id", _ids(detectors))
    _put(dets, "label", [labels.get(d, f"ch{d}") for d in detectors])
    _put(dets, "counts", np.array([counts.get(d, 0) for d in detectors], dtype="i8"))

    identity = _group(h5, "identity")
    _put(identity, "format_name", "Photon-HDF5")
    _put(identity, "format_version", PHOTON_HDF5_VERSION)
    _put(identity, "format_url", "http://photon-hdf5.org/")
    _put(identity, "software", "qgs")
    _put(identity, "software_version", software_version())
    _put(identity, "creation_time", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"))
    _put(identity, "filename", out_path.name)
    _put(identity, "filename_full", str(out_path.resolve()))
    software = manifest.get("software") or {}
    provenance = _group(h5, "provenance")
    _put(provenance, "filename", root.name)
    _put(provenance, "filename_full", str(root.resolve()))
    _put(provenance, "creation_time", str(manifest.get("run_start_utc")))
    _put(provenance, "software", str(software.get("name", "qgs")))
    _put(provenance, "software_version", str(software.get("version", "?")))

    user = _group(_group(h5, "user"), "qgs")
    _put(user, "station", str(station))
    _put(user, "run_start_utc", str(manifest.get("run_start_utc")))
    _put(user, "timescale", json.dumps(timescale))
    _put(user, "manifest_status", str(manifest.get("status")))
    _put(user, "tle", json.dumps(manifest.get("tle")))
    _put(user, "channel_map", json.dumps(channel_map))
    _put(user, "gaps", json.dumps((manifest.get("events") or {}).get("gaps", [])))
