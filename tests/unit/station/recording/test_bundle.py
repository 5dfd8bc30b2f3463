"""BundleWriter manifest and logs; reader, verify (API and CLI exit codes), HDF5 export."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from drivers.clock import WarpClock
from drivers.datatypes import AltAz, ChannelMap, EventBlock
from station.recording import commands
from station.recording.bundle import BundleWriter, bundle_dir_name
from station.recording.errors import ChunkError, RecordingError
from station.recording.photon_hdf5 import export_photon_hdf5
from station.recording.reader import chunk_files, iter_blocks, recover_bundle
from station.recording.verify import verify_bundle

MakeBlocks = Callable[..., list[EventBlock]]  # the blocks_factory fixture (conftest.py)

TLE = (
    "1 36797U 16051A   24001.50000000  .00000000  00000-0  00000-0 0  9990",
    "2 36797  97.3600 100.0000 0010000  90.0000 270.0000 15.25000000    07",
)
START = datetime(2024, 1, 1, 20, 15, 0, tzinfo=UTC)


async def _record_bundle(
    root: Path, blocks: list[EventBlock], **options: object
) -> tuple[Path, dict[str, object]]:
    clock = WarpClock(epoch=START.timestamp(), rate=1.0)
    bundle = root / bundle_dir_name("delingha", START, "pass-42")
    writer = await BundleWriter.create(
        bundle,
        clock=clock,
        station="delingha",
        run_start_utc=START,
        tle=TLE,
        config={"site": {"latitude_deg": 37.37}},
        channel_map=ChannelMap(h=0, v=1, d=2, a=3),
        info={"analyzer_mode": "key"},
        max_chunk_events=4000,
        **options,
    )
    manifest_at_start = json.loads((bundle / "manifest.json").read_text())
    assert manifest_at_start["status"] == "recording"
    for i, b in enumerate(blocks):
        await writer.events.write(b)
        t = clock.now()
        writer.log_pointing(t, AltAz(120.0 + i, 40.0), AltAz(120.01 + i, 39.99))
        writer.log_waveplate(t, 11.25, 11.2)
        writer.log_rates(t, {0: 1000.0, 1: 990.5})
    manifest = await writer.close()
    return bundle, manifest


async def test_manifest_is_complete_and_hashes_match(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    blocks = blocks_factory(5, 2000)
    bundle, manifest = await _record_bundle(tmp_path, blocks[:2] + blocks[3:])
    assert bundle.name == "20240101T201500Z_pass-42"
    assert manifest == json.loads((bundle / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["station"] == "delingha"
    assert manifest["tle"] == list(TLE)
    assert manifest["run_start_utc"] == "2024-01-01T20:15:00.000000Z"
    assert manifest["config"] == {"site": {"latitude_deg": 37.37}}
    assert manifest["software"]["name"] == "qgs"
    events = manifest["events"]
    assert isinstance(events, dict)
    assert events["total"] == 8000
    assert [g["missing_blocks"] for g in events["gaps"]] == [1]
    ch = np.concatenate([b.channel for b in blocks[:2] + blocks[3:]])
    assert events["counts_per_channel"] == {
        str(c): int(n) for c, n in enumerate(np.bincount(ch)) if n
    }
    assert events["first_t_ps"] == int(blocks[0].t_ps[0])
    assert events["last_t_ps"] == int(blocks[-1].t_ps[-1])
    files = manifest["files"]
    assert isinstance(files, dict)
    assert {"pointing.csv", "waveplate.csv", "rates.csv"} <= files.keys()
    assert len([f for f in files if f.startswith("events/")]) == 2
    for rel, entry in files.items():
        data = (bundle / rel).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    pointing = (bundle / "pointing.csv").read_text().splitlines()
    assert pointing[0] == "t_s,cmd_az_deg,cmd_el_deg,act_az_deg,act_el_deg"
    assert len(pointing) == 1 + 4
    assert pointing[1].endswith(",120.000000,40.000000,120.010000,39.990000")
    assert len((bundle / "rates.csv").read_text().splitlines()) == 1 + 8


async def test_reader_streams_identical_events(tmp_path: Path, blocks_factory: MakeBlocks) -> None:
    blocks = blocks_factory(3, 3000)
    bundle, _ = await _record_bundle(tmp_path, blocks)
    read = list(iter_blocks(bundle))
    assert [b.seq for b in read] == [0, 1, 2]
    np.testing.assert_array_equal(
        np.concatenate([b.t_ps for b in read]), np.concatenate([b.t_ps for b in blocks])
    )
    np.testing.assert_array_equal(
        np.concatenate([b.channel for b in read]), np.concatenate([b.channel for b in blocks])
    )


async def test_create_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(RecordingError, match="not empty"):
        await BundleWriter.create(tmp_path, clock=WarpClock(0.0), station="s", run_start_utc=START)


async def test_verify_ok_then_corruption_named(tmp_path: Path, blocks_factory: MakeBlocks) -> None:
    bundle, _ = await _record_bundle(tmp_path, blocks_factory(3, 3000))
    report = verify_bundle(bundle)
    assert report.ok, report.summary()
    assert report.events == 9000
    victim = chunk_files(bundle)[1][1]
    data = bytearray(victim.read_bytes())
    data[100] ^= 1
    victim.write_bytes(bytes(data))
    report = verify_bundle(bundle)
    assert not report.ok
    assert any(victim.name in p and "payload-crc" in p for p in report.problems)
    with pytest.raises(ChunkError) as exc:
        list(iter_blocks(bundle))
    assert exc.value.reason == "payload-crc"


async def test_verify_flags_missing_chunk_and_unclosed_bundle(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    bundle, _ = await _record_bundle(tmp_path, blocks_factory(3, 3000))
    chunk_files(bundle)[0][1].unlink()
    report = verify_bundle(bundle)
    assert any("chunk 0 is missing" in p for p in report.problems)
    with pytest.raises(ChunkError) as exc:
        list(iter_blocks(bundle))
    assert exc.value.reason == "missing"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="qgs")
    commands.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    result = args.func(args)
    assert isinstance(result, int)
    return result


async def test_cli_verify_exit_codes(
    tmp_path: Path, blocks_factory: MakeBlocks, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, _ = await _record_bundle(tmp_path, blocks_factory(2, 3000))
    assert _cli(["bundle", "verify", str(bundle)]) == 0
    assert "OK" in capsys.readouterr().out
    assert _cli(["bundle", "verify", str(tmp_path / "nope")]) == 2
    assert "no such bundle directory" in capsys.readouterr().err
    assert _cli(["bundle", "verify", str(tmp_path)]) == 2  # a directory, but no manifest
    assert _cli(["bundle"]) == 2
    victim = chunk_files(bundle)[0][1]
    victim.write_bytes(victim.read_bytes()[:-5])
    capsys.readouterr()
    assert _cli(["bundle", "verify", str(bundle)]) == 1
    out = capsys.readouterr().out
    assert victim.name in out
    assert "CORRUPT" in out
    (bundle / "manifest.json").write_text("{not json")
    assert _cli(["bundle", "verify", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert "manifest is not valid JSON" in err
    assert err.count("\n") == 1  # one line, no traceback


async def test_photon_hdf5_export_content(
    tmp_path: Path, blocks_factory: MakeBlocks, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = blocks_factory(3, 3000)
    bundle, _ = await _record_bundle(tmp_path, blocks)
    out = tmp_path / "pass.h5"
    argv = ["bundle", "export", "--format", "photon-hdf5", str(bundle), "-o", str(out)]
    assert _cli(argv) == 0
    assert "9000 photons" in capsys.readouterr().out
    assert _cli(argv) == 2  # exists, no --force
    t = np.concatenate([b.t_ps for b in blocks])
    ch = np.concatenate([b.channel for b in blocks])
    with h5py.File(out, "r") as h5:
        assert h5["photon_data/timestamps"].dtype == np.int64
        assert h5["photon_data/detectors"].dtype == np.uint8
        np.testing.assert_array_equal(h5["photon_data/timestamps"][:], t)
        np.testing.assert_array_equal(h5["photon_data/detectors"][:], ch)
        assert h5["photon_data/timestamps_specs/timestamps_unit"][()] == 1e-12
        # the acquisition's own span, not the time since the tagger's epoch
        assert h5["acquisition_duration"][()] == pytest.approx(int(t[-1] - t[0]) * 1e-12)
        assert "tagger's epoch" in h5["description"][()].decode()
        assert h5["identity/format_name"][()] == b"Photon-HDF5"
        assert h5["photon_data/measurement_specs/measurement_type"][()] == b"generic"
        specs = h5["photon_data/measurement_specs/detectors_specs"]
        assert [int(specs[f"polarization_ch{i}"][0]) for i in (1, 2, 3, 4)] == [0, 1, 2, 3]
        assert h5["setup/num_polarization_ch"][()] == 4
        assert list(h5["setup/detection_polarizations"][:]) == [0.0, 90.0, 45.0, 135.0]
        assert h5["setup/num_pixels"][()] == 5  # H, V, D, A and the extra channel 7
        assert list(h5["setup/detectors/counts"][:]) == [int(n) for n in np.bincount(ch) if n]
        assert h5["user/qgs/station"][()] == b"delingha"
        assert "provenance" in h5
        assert "description" in h5


async def test_export_refuses_corrupt_bundle_and_leaves_no_output(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    bundle, _ = await _record_bundle(tmp_path, blocks_factory(2, 3000))
    victim = chunk_files(bundle)[-1][1]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    out = tmp_path / "x.h5"
    with pytest.raises(ChunkError):
        export_photon_hdf5(bundle, out)
    assert not out.exists()
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


async def test_recover_reports_a_clean_bundle(tmp_path: Path, blocks_factory: MakeBlocks) -> None:
    bundle, _ = await _record_bundle(tmp_path, blocks_factory(2, 3000))
    report = recover_bundle(bundle)
    assert report.status == "complete"
    assert report.events == 6000
    assert report.problems == []
    assert report.log_rows["pointing.csv"] == 2
