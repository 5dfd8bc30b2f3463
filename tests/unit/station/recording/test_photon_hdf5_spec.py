"""The Photon-HDF5 export is accepted by the format's reference reader (phconvert) and PyTables.

Issue 14: the export had no field descriptions (TITLE), variable-length strings PyTables cannot
read, a non-spec ``/setup/detectors/polarization_ch``, the PPS input exported as a photon
detector (the spec has ``detectors_specs/non_photon_idN``) and a duration counted from the
tagger's epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.clock import WarpClock
from drivers.datatypes import ChannelMap, EventBlock
from station.recording.bundle import BundleWriter
from station.recording.photon_hdf5 import export_photon_hdf5
from station.recording.timescale import EVENT_TIME_ZERO, TimescaleTracker

phconvert_hdf5 = pytest.importorskip("phconvert.hdf5")
tables = pytest.importorskip("tables")

MakeBlocks = Callable[..., list[EventBlock]]  # the blocks_factory fixture (conftest.py)

START = datetime(2024, 1, 1, 20, 15, 0, tzinfo=UTC)
PPS = 8  #: the tagger input carrying the PPS (settings.py default)
#: the tagger's epoch lies well before the run: the first event is at ~1193 s of tagger time
EPOCH_LEAD_PS = 1193 * 10**12


def _with_pps(blocks: list[EventBlock]) -> list[EventBlock]:
    """Shift the stream away from the tagger's epoch and turn every 500th event into a PPS."""
    out = []
    for b in blocks:
        ch = b.channel.copy()
        ch[::500] = PPS
        out.append(EventBlock(b.seq, b.t_ps + EPOCH_LEAD_PS, ch))
    return out


async def _record(root: Path, blocks: list[EventBlock], *, channel_map: bool = True) -> Path:
    clock = WarpClock(epoch=START.timestamp(), rate=1.0)
    bundle = root / "bundle"
    writer = await BundleWriter.create(
        bundle,
        clock=clock,
        station="delingha",
        run_start_utc=START,
        channel_map=ChannelMap(h=0, v=1, d=2, a=3) if channel_map else None,
        max_chunk_events=4000,
    )
    tracker = TimescaleTracker(PPS)
    for b in blocks:
        await writer.events.write(b)
        tracker.observe(b, clock.now())
    writer.annotate("timescale", tracker.section())
    await writer.close()
    return bundle


def _read_all(h5: Any) -> dict[str, object]:  # a tables.File
    """Every leaf of the file read through PyTables (fails on types PyTables cannot read)."""
    out: dict[str, object] = {}
    for leaf in h5.walk_nodes("/", classname="Leaf"):
        # a plain array of a fixed-size type: no UnImplemented node, no VLArray of vlen strings
        assert type(leaf) is tables.Array, (leaf._v_pathname, type(leaf))
        assert leaf.dtype.kind in "biufS", (leaf._v_pathname, leaf.dtype)
        out[leaf._v_pathname] = leaf.read()
    return out


async def test_export_is_valid_photon_hdf5(tmp_path: Path, blocks_factory: MakeBlocks) -> None:
    blocks = _with_pps(blocks_factory(3, 3000))
    bundle = await _record(tmp_path, blocks)
    out = tmp_path / "pass.h5"
    assert export_photon_hdf5(bundle, out) == 9000
    t = np.concatenate([b.t_ps for b in blocks])
    ch = np.concatenate([b.channel for b in blocks])

    with tables.open_file(str(out), "r") as h5:
        # the reference reader's validation, strict about names, types and TITLEs
        phconvert_hdf5.assert_valid_photon_hdf5(h5, warnings=False, strict_description=True)
        values = _read_all(h5)
        root = h5.root
        np.testing.assert_array_equal(root.photon_data.timestamps.read(), t)
        np.testing.assert_array_equal(root.photon_data.detectors.read(), ch)
        assert root.photon_data.timestamps.dtype == np.int64
        assert root.photon_data.detectors.dtype == np.uint8
        assert root.photon_data.timestamps_specs.timestamps_unit.read() == 1e-12
        # the pass's own span, not the time since the tagger's epoch
        duration = root.acquisition_duration.read()
        assert duration == pytest.approx(int(t[-1] - t[0]) * 1e-12)
        assert duration < 1.0 < EPOCH_LEAD_PS * 1e-12
        assert EVENT_TIME_ZERO in root.description.read().decode()

        specs = root.photon_data.measurement_specs
        assert specs.measurement_type.read() == b"generic"
        det_specs = specs.detectors_specs
        assert [int(det_specs[f"polarization_ch{i}"].read()[0]) for i in (1, 2, 3, 4)] == [
            0, 1, 2, 3,
        ]  # fmt: skip
        # the PPS is a non-photon input, not a photon detector
        assert list(det_specs.non_photon_id1.read()) == [PPS]
        setup = root.setup
        assert setup.num_pixels.read() == 5  # H, V, D, A and the unmapped channel 7
        assert setup.num_polarization_ch.read() == 4
        assert list(setup.detection_polarizations.read()) == [0.0, 90.0, 45.0, 135.0]
        assert "polarization_ch" not in setup.detectors
        assert list(setup.detectors.id.read()) == [0, 1, 2, 3, 7, PPS]
        labels = setup.detectors.label.read()
        assert labels.dtype.kind == "S"  # fixed-length bytes, readable everywhere
        assert [bytes(x) for x in labels] == [b"H", b"V", b"D", b"A", b"ch7", b"PPS"]
        assert list(setup.detectors.counts.read()) == [
            int(np.count_nonzero(ch == d)) for d in (0, 1, 2, 3, 7, PPS)
        ]
        assert root.identity.format_version.read() == b"0.5"
        assert root.user.qgs.station.read() == b"delingha"
        assert b"tagger_epoch_utc" in root.user.qgs.timescale.read()
        assert isinstance(values["/user/qgs/tle"], bytes)  # scalars read back as values


async def test_export_without_channel_map_is_valid(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    blocks = _with_pps(blocks_factory(1, 2000))
    bundle = await _record(tmp_path, blocks, channel_map=False)
    out = tmp_path / "pass.h5"
    export_photon_hdf5(bundle, out)
    with tables.open_file(str(out), "r") as h5:
        phconvert_hdf5.assert_valid_photon_hdf5(h5, warnings=False, strict_description=True)
        _read_all(h5)
        assert h5.root.setup.num_polarization_ch.read() == 1
        assert list(h5.root.photon_data.measurement_specs.detectors_specs.non_photon_id1) == [PPS]
        assert h5.root.setup.num_pixels.read() == 5


async def test_export_of_an_empty_bundle_is_valid(tmp_path: Path) -> None:
    bundle = await _record(tmp_path, [])
    out = tmp_path / "empty.h5"
    assert export_photon_hdf5(bundle, out) == 0
    with tables.open_file(str(out), "r") as h5:
        phconvert_hdf5.assert_valid_photon_hdf5(h5, warnings=False, strict_description=True)
        assert h5.root.photon_data.timestamps.read().size == 0
        assert h5.root.acquisition_duration.read() == 0.0
