"""Chunk file format: round trip, atomic rename, and typed errors for every corruption."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from station.recording.chunkfile import (
    HEADER,
    HEADER_SIZE,
    ChunkWriter,
    chunk_name,
    read_chunk,
    read_header,
)
from station.recording.errors import ChunkError


def _write_chunk(directory: Path, n: int = 1000, seq: int = 0) -> Path:
    t = np.arange(n, dtype=np.int64) * 250 + 10
    ch = (np.arange(n) % 4).astype(np.uint8)
    writer = ChunkWriter(directory, seq)
    writer.append(t[: n // 2], ch[: n // 2], block_seq=5)
    writer.append(t[n // 2 :], ch[n // 2 :], block_seq=6)
    writer.finish()
    return directory / chunk_name(seq)


def test_round_trip_arrays_dtypes_and_header(tmp_path: Path) -> None:
    path = _write_chunk(tmp_path, 1000, seq=3)
    chunk = read_chunk(path)
    assert chunk.t_ps.dtype == np.int64
    assert chunk.channel.dtype == np.uint8
    np.testing.assert_array_equal(chunk.t_ps, np.arange(1000, dtype=np.int64) * 250 + 10)
    np.testing.assert_array_equal(chunk.channel, np.arange(1000) % 4)
    h = chunk.header
    assert (h.seq, h.count, h.first_t_ps, h.last_t_ps, h.first_block_seq) == (
        3,
        1000,
        10,
        999 * 250 + 10,
        5,
    )
    assert path.stat().st_size == HEADER_SIZE + 9 * 1000


def test_finish_reports_hash_and_counts_matching_the_file(tmp_path: Path) -> None:
    import hashlib

    writer = ChunkWriter(tmp_path, 0)
    writer.append(np.array([1, 2, 3], np.int64), np.array([0, 0, 9], np.uint8), block_seq=0)
    info = writer.finish()
    assert info.sha256 == hashlib.sha256((tmp_path / chunk_name(0)).read_bytes()).hexdigest()
    assert info.counts_per_channel == {0: 2, 9: 1}


def test_empty_chunk_round_trips(tmp_path: Path) -> None:
    ChunkWriter(tmp_path, 0).finish()
    chunk = read_chunk(tmp_path / chunk_name(0))
    assert chunk.header.count == 0
    assert len(chunk.t_ps) == 0


def test_no_partial_file_under_the_final_name(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path, 7)
    writer.append(np.arange(10, dtype=np.int64), np.zeros(10, np.uint8), block_seq=0)
    assert not writer.final_path.exists()
    assert writer.tmp_path.exists()
    assert writer.tmp_path.name.startswith(".")
    with pytest.raises(ChunkError) as exc:  # an unfinished temp file has a zero magic
        read_header(writer.tmp_path)
    assert exc.value.reason in ("magic", "length")
    writer.finish()
    assert writer.final_path.exists()
    assert not writer.tmp_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [chunk_name(7)]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (HEADER_SIZE + 17, "payload-crc"),  # inside the times
        (HEADER_SIZE + 8 * 1000 + 3, "payload-crc"),  # inside the channels
        (20, "header-crc"),  # chunk seq field
        (60, "header-crc"),  # the header CRC itself
        (0, "magic"),
    ],
)
def test_flipped_byte_is_detected(tmp_path: Path, offset: int, reason: str) -> None:
    path = _write_chunk(tmp_path)
    _flip(path, offset)
    with pytest.raises(ChunkError) as exc:
        read_chunk(path)
    assert exc.value.reason == reason
    assert path.name in str(exc.value)


@pytest.mark.parametrize("keep", [0, 10, HEADER_SIZE, HEADER_SIZE + 8999])
def test_truncated_file_is_a_length_error(tmp_path: Path, keep: int) -> None:
    path = _write_chunk(tmp_path)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ChunkError) as exc:
        read_chunk(path)
    assert exc.value.reason == "length"
    assert chunk_name(0) in str(exc.value)


def test_unknown_version_is_reported_as_such(tmp_path: Path) -> None:
    path = _write_chunk(tmp_path)
    data = bytearray(path.read_bytes())
    fields = list(HEADER.unpack_from(data))
    fields[1] = 2  # format_version
    head = HEADER.pack(*fields)
    data[:HEADER_SIZE] = head + struct.pack("<I", zlib.crc32(head))
    path.write_bytes(bytes(data))
    with pytest.raises(ChunkError, match="version 2") as exc:
        read_chunk(path)
    assert exc.value.reason == "version"


def test_consistent_crc_but_wrong_first_time_is_a_content_error(tmp_path: Path) -> None:
    path = _write_chunk(tmp_path)
    data = bytearray(path.read_bytes())
    fields = list(HEADER.unpack_from(data))
    fields[6] = 11  # first_t_ps, actually 10
    head = HEADER.pack(*fields)
    data[:HEADER_SIZE] = head + struct.pack("<I", zlib.crc32(head))
    path.write_bytes(bytes(data))
    with pytest.raises(ChunkError) as exc:
        read_chunk(path)
    assert exc.value.reason == "content"
