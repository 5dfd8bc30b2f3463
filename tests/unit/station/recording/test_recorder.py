"""Recorder: round trip, rotation by event time / size / clock time, gaps, disk errors."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from drivers.clock import SystemClock, WarpClock
from drivers.datatypes import EventBlock
from station.recording.chunkfile import read_chunk
from station.recording.errors import RecordingError
from station.recording.reader import chunk_files, iter_blocks
from station.recording.recorder import Recorder

MakeBlocks = Callable[..., list[EventBlock]]  # the blocks_factory fixture (conftest.py)


def _read_all(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    chunks = [read_chunk(p) for _, p in chunk_files(bundle)]
    return (
        np.concatenate([c.t_ps for c in chunks]),
        np.concatenate([c.channel for c in chunks]),
    )


async def test_round_trip_identical_arrays(tmp_path: Path, blocks_factory: MakeBlocks) -> None:
    blocks = blocks_factory(20, 5000)
    rec = Recorder(tmp_path, clock=SystemClock(), max_chunk_events=30_000)
    for b in blocks:
        await rec.write(b)
    summary = await rec.close()
    assert summary.events == 100_000
    assert summary.gaps == []
    assert [c.seq for c in summary.chunks] == list(range(len(summary.chunks)))
    assert all(c.sha256 and len(c.sha256) == 64 for c in summary.chunks)
    read = list(iter_blocks_no_manifest(tmp_path))
    t = np.concatenate([r.t_ps for r in read])
    ch = np.concatenate([r.channel for r in read])
    assert t.dtype == np.int64
    assert ch.dtype == np.uint8
    np.testing.assert_array_equal(t, np.concatenate([b.t_ps for b in blocks]))
    np.testing.assert_array_equal(ch, np.concatenate([b.channel for b in blocks]))
    expected = np.bincount(ch, minlength=256)
    assert summary.counts_per_channel == {
        int(c): int(expected[c]) for c in np.flatnonzero(expected)
    }


def iter_blocks_no_manifest(bundle: Path) -> list[EventBlock]:
    """The recorder alone writes no manifest; read its chunks directly."""
    return [
        EventBlock(seq, c.t_ps, c.channel)
        for seq, c in ((s, read_chunk(p)) for s, p in chunk_files(bundle))
    ]


async def test_rotation_by_size_splits_blocks_exactly(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    rec = Recorder(tmp_path, clock=SystemClock(), max_chunk_events=7_000)
    for b in blocks_factory(5, 3000):
        await rec.write(b)
    summary = await rec.close()
    assert [c.count for c in summary.chunks] == [7000, 7000, 1000]
    assert summary.chunks[1].first_block_seq == 2  # 7000 = 2 blocks + 1000 of block 2


async def test_rotation_by_event_time(tmp_path: Path, blocks_factory: MakeBlocks) -> None:
    # ~1000 ps per event; 2e-6 s = 2_000_000 ps of event time per chunk ~ 2000 events
    blocks = blocks_factory(4, 5000)
    # a nearly frozen clock so that only the event-time side of the rule can act
    frozen = WarpClock(epoch=1.7e9, rate=1e-6)
    rec = Recorder(tmp_path, clock=frozen, max_chunk_s=2e-6, max_chunk_events=10**9)
    for b in blocks:
        await rec.write(b)
    summary = await rec.close()
    assert len(summary.chunks) >= 9
    for c in summary.chunks:
        assert c.last_t_ps - c.first_t_ps < 2_000_000
    for a, b in zip(summary.chunks, summary.chunks[1:], strict=False):
        assert b.first_t_ps >= a.first_t_ps + 2_000_000  # a chunk is full before the next
    t, _ = _read_all(tmp_path)
    np.testing.assert_array_equal(t, np.concatenate([b.t_ps for b in blocks]))


async def test_rotation_by_clock_time_without_new_blocks(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    """A stalled stream is still flushed: the ticker rotates on the (warped) clock."""
    clock = WarpClock(epoch=1.7e9, rate=50.0)  # 1 clock second = 20 ms wall
    rec = Recorder(tmp_path, clock=clock, max_chunk_s=1.0)
    await rec.write(blocks_factory(1, 100)[0])
    assert chunk_files(tmp_path) == []
    for _ in range(200):  # bounded: up to 8 clock s = 160 ms wall
        if chunk_files(tmp_path):
            break
        await clock.sleep(0.04)
    assert len(chunk_files(tmp_path)) == 1
    assert read_chunk(chunk_files(tmp_path)[0][1]).header.count == 100
    summary = await rec.close()
    assert summary.events == 100


async def test_sequence_gaps_are_recorded_not_hidden(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    blocks = blocks_factory(6, 100)
    rec = Recorder(tmp_path, clock=SystemClock())
    for b in blocks[:2] + blocks[4:]:  # blocks 2 and 3 lost upstream
        await rec.write(b)
    await rec.write(EventBlock.empty(7))  # empty blocks count for sequence tracking
    await rec.write(EventBlock.empty(7))  # repeated sequence number
    summary = await rec.close()
    assert [
        (g.kind, g.after_block_seq, g.next_block_seq, g.missing_blocks) for g in summary.gaps
    ] == [
        ("missing", 1, 4, 2),
        ("missing", 5, 7, 1),
        ("reordered", 7, 7, 0),
    ]
    assert summary.gaps[0].t_ps_before == int(blocks[1].t_ps[-1])
    assert summary.gaps[0].t_ps_after == int(blocks[4].t_ps[0])
    assert summary.events == 400


async def test_time_going_backwards_starts_a_new_ordered_chunk(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, clock=SystemClock())
    await rec.write(EventBlock(0, np.array([100, 200], np.int64), np.zeros(2, np.uint8)))
    await rec.write(EventBlock(1, np.array([50, 60], np.int64), np.ones(2, np.uint8)))
    summary = await rec.close()
    assert summary.time_regressions == 1
    assert [c.count for c in summary.chunks] == [2, 2]
    assert all(read_chunk(p).header.count == 2 for _, p in chunk_files(tmp_path))


async def test_disk_error_raises_recording_error(
    tmp_path: Path, blocks_factory: MakeBlocks
) -> None:
    rec = Recorder(tmp_path, clock=SystemClock(), max_chunk_events=1000)
    blocks = blocks_factory(6, 1000)
    await rec.write(blocks[0])
    await rec.flush()
    shutil.rmtree(tmp_path / "events")  # the disk "goes away" under the recorder

    async def write_rest() -> None:
        for b in blocks[1:]:
            await rec.write(b)
        await rec.flush()

    with pytest.raises(RecordingError, match="disk error"):
        await write_rest()
    with pytest.raises(RecordingError):  # a failed recorder stays failed
        await rec.write(blocks[-1])
    summary = await rec.close()
    assert summary.error is not None
    assert summary.events == 1000  # what reached the disk before the failure


async def test_write_after_close_is_an_error(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, clock=SystemClock())
    await rec.close()
    with pytest.raises(RecordingError, match="after close"):
        await rec.write(EventBlock.empty(0))


async def test_iter_blocks_needs_a_manifest(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, clock=SystemClock())
    await rec.close()
    with pytest.raises(RecordingError, match="not a pass bundle"):
        list(iter_blocks(tmp_path))
