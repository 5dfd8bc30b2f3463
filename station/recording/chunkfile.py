"""Event chunk files: a 64-byte self-checking header, then int64 times and uint8 channels.

Layout (all little-endian; full spec in docs/recording.md)::

    offset size field
         0    8 magic            b"QGSEVCH1"
         8    2 format_version   1
        10    2 header_size      64
        12    4 flags            0 (reserved)
        16    8 chunk_seq        uint64, 0, 1, 2, ... within a bundle
        24    8 event_count      uint64, n
        32    8 first_t_ps       int64, time of the first event (0 if n == 0)
        40    8 last_t_ps        int64, time of the last event (0 if n == 0)
        48    8 first_block_seq  int64, EventBlock.seq of the first event's block (-1 if none)
        56    4 payload_crc32    zlib.crc32 over the payload bytes
        60    4 header_crc32     zlib.crc32 over bytes 0..59
        64  8n t_ps             int64 ps on the tagger's timescale, non-decreasing
     64+8n   n channel          uint8

Structure of arrays keeps the reader zero-copy (``np.frombuffer``) and the times 8-byte
aligned (reference/timetag.md (c)). The file is written under a temporary hidden name and
renamed only once complete and fsynced, so a file under a final chunk name is always whole.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from station.recording.atomic import fsync_dir, temp_name
from station.recording.errors import ChunkError

MAGIC = b"QGSEVCH1"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sHHIQQqqqI")  # everything but the trailing header CRC
HEADER_SIZE = HEADER.size + 4
BYTES_PER_EVENT = 9
CHUNK_SUFFIX = ".qev"
_T_DTYPE = np.dtype("<i8")
_CH_DTYPE = np.dtype("u1")

assert HEADER_SIZE == 64


def chunk_name(seq: int) -> str:
    """File name of chunk ``seq`` (zero-padded so that names sort like numbers)."""
    return f"chunk_{seq:08d}{CHUNK_SUFFIX}"


def chunk_seq_of(name: str) -> int | None:
    """Chunk sequence number from a final chunk file name, or None if it is not one."""
    if not (name.startswith("chunk_") and name.endswith(CHUNK_SUFFIX)):
        return None
    digits = name[len("chunk_") : -len(CHUNK_SUFFIX)]
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    """Decoded chunk header; times in int64 picoseconds since the run start."""

    seq: int
    count: int
    first_t_ps: int
    last_t_ps: int
    first_block_seq: int
    payload_crc32: int
    version: int = FORMAT_VERSION

    def pack(self) -> bytes:
        head = HEADER.pack(
            MAGIC,
            self.version,
            HEADER_SIZE,
            0,
            self.seq,
            self.count,
            self.first_t_ps,
            self.last_t_ps,
            self.first_block_seq,
            self.payload_crc32,
        )
        return head + struct.pack("<I", zlib.crc32(head))

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + BYTES_PER_EVENT * self.count


def parse_header(raw: bytes, path: Path) -> ChunkHeader:
    """Decode and check a header (magic, header CRC, version); raises :class:`ChunkError`."""
    if len(raw) < HEADER_SIZE:
        raise ChunkError(
            f"file has {len(raw)} bytes, shorter than the {HEADER_SIZE}-byte header",
            path=path,
            reason="length",
        )
    fields = HEADER.unpack_from(raw)
    if fields[0] != MAGIC:
        what = "an unfinished chunk (zeroed header)" if not any(raw[:8]) else "not a chunk file"
        raise ChunkError(
            f"bad magic {fields[0]!r}, expected {MAGIC!r}: {what}", path=path, reason="magic"
        )
    (stored_crc,) = struct.unpack_from("<I", raw, HEADER.size)
    actual_crc = zlib.crc32(raw[: HEADER.size])
    if stored_crc != actual_crc:
        raise ChunkError(
            f"header CRC32 {actual_crc:#010x} does not match stored {stored_crc:#010x}",
            path=path,
            reason="header-crc",
        )
    _, version, header_size, _flags, seq, count, first, last, first_block, pcrc = fields
    if version != FORMAT_VERSION or header_size != HEADER_SIZE:
        raise ChunkError(
            f"format version {version} (header {header_size} B) is not supported; this "
            f"reader knows version {FORMAT_VERSION} ({HEADER_SIZE} B): upgrade qgs",
            path=path,
            reason="version",
        )
    return ChunkHeader(seq, count, first, last, first_block, pcrc, version)


def read_header(path: Path) -> ChunkHeader:
    """Read and check only the header of ``path`` (cheap; the payload is not verified)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(HEADER_SIZE)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise ChunkError(f"cannot read: {exc.strerror or exc}", path=path, reason="io") from exc
    header = parse_header(raw, path)
    _check_size(header, size, path)
    return header


def _check_size(header: ChunkHeader, size: int, path: Path) -> None:
    if size != header.file_size:
        raise ChunkError(
            f"file has {size} bytes but the header promises {header.count} events "
            f"= {header.file_size} bytes (truncated or appended to)",
            path=path,
            reason="length",
        )


@dataclass(frozen=True)
class ChunkData:
    """A verified chunk: header plus zero-copy arrays over the file bytes."""

    header: ChunkHeader
    t_ps: npt.NDArray[np.int64]
    channel: npt.NDArray[np.uint8]


def read_chunk(path: Path) -> ChunkData:
    """Read ``path`` and verify everything (lengths, both CRCs, first/last time, order).

    Raises :class:`ChunkError` naming the file and the failing check; never returns data
    that failed a check.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = bytearray(size)
            got = fh.readinto(buf)
    except OSError as exc:
        raise ChunkError(f"cannot read: {exc.strerror or exc}", path=path, reason="io") from exc
    if got != size:
        raise ChunkError(f"short read: {got} of {size} bytes", path=path, reason="length")
    header = parse_header(bytes(buf[:HEADER_SIZE]), path)
    _check_size(header, size, path)
    view = memoryview(buf)[HEADER_SIZE:]
    crc = zlib.crc32(view)
    if crc != header.payload_crc32:
        raise ChunkError(
            f"payload CRC32 {crc:#010x} does not match header {header.payload_crc32:#010x}",
            path=path,
            reason="payload-crc",
        )
    n = header.count
    t = np.frombuffer(buf, dtype=_T_DTYPE, count=n, offset=HEADER_SIZE).astype(np.int64, copy=False)
    ch = np.frombuffer(buf, dtype=_CH_DTYPE, count=n, offset=HEADER_SIZE + 8 * n)
    _check_content(header, t, path)
    return ChunkData(header, t, ch)


def _check_content(header: ChunkHeader, t: npt.NDArray[np.int64], path: Path) -> None:
    if header.count == 0:
        return
    if int(t[0]) != header.first_t_ps or int(t[-1]) != header.last_t_ps:
        raise ChunkError(
            f"times span [{int(t[0])}, {int(t[-1])}] ps but the header says "
            f"[{header.first_t_ps}, {header.last_t_ps}] ps",
            path=path,
            reason="content",
        )
    if header.count > 1 and bool(np.any(t[1:] < t[:-1])):
        raise ChunkError("event times decrease inside the chunk", path=path, reason="content")


@dataclass(slots=True)
class ChunkInfo:
    """What the manifest records about a finished chunk (``sha256`` filled in later)."""

    file: str  #: path relative to the bundle directory
    seq: int
    count: int
    first_t_ps: int
    last_t_ps: int
    first_block_seq: int
    payload_crc32: int
    size: int
    counts_per_channel: dict[int, int] = field(default_factory=dict)
    sha256: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "seq": self.seq,
            "count": self.count,
            "first_t_ps": self.first_t_ps,
            "last_t_ps": self.last_t_ps,
            "first_block_seq": self.first_block_seq,
            "payload_crc32": self.payload_crc32,
            "size": self.size,
            "sha256": self.sha256,
        }


class ChunkWriter:
    """Writes one chunk file: streamed to a temporary name, then fsynced and renamed.

    Synchronous and not thread-safe: the :class:`~station.recording.recorder.Recorder`
    drives it from its single worker thread. Times are written as they arrive; channel
    arrays (1/9 of the bytes) are kept by reference and written at :meth:`finish`, which is
    what the structure-of-arrays layout needs. The header is written last, at offset 0,
    over a zeroed placeholder: a crash leaves a temporary file with a zero magic.
    """

    def __init__(
        self,
        directory: Path,
        seq: int,
        *,
        relative_to: Path | None = None,
        known_channels: set[int] | None = None,
    ) -> None:
        self.seq = seq
        #: channels seen so far in the stream (shared between chunks; speeds up counting)
        self.known_channels = known_channels if known_channels is not None else set()
        self.final_path = directory / chunk_name(seq)
        self.tmp_path = temp_name(self.final_path)
        self._relative_to = relative_to or directory
        self._fh = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in finish/abort
        self._fh.write(bytes(HEADER_SIZE))
        self._crc = 0
        self._count = 0
        self._first_t = 0
        self._last_t = 0
        self._first_block_seq = -1
        self._times: list[memoryview] = []  # kept for hashing from memory at seal()
        self._channels: list[npt.NDArray[np.uint8]] = []

    @property
    def count(self) -> int:
        return self._count

    def append(
        self, t_ps: npt.NDArray[np.int64], channel: npt.NDArray[np.uint8], block_seq: int
    ) -> None:
        """Add events (times already ordered and after any previously appended)."""
        n = int(t_ps.shape[0])
        if n == 0:
            return
        t = np.ascontiguousarray(t_ps, dtype=_T_DTYPE)
        data = t.data.cast("B")
        self._fh.write(data)
        self._crc = zlib.crc32(data, self._crc)
        self._times.append(data)
        self._channels.append(np.ascontiguousarray(channel, dtype=_CH_DTYPE))
        if self._count == 0:
            self._first_t = int(t[0])
            self._first_block_seq = block_seq
        self._last_t = int(t[-1])
        self._count += n

    def seal(self) -> tuple[ChunkInfo, list[memoryview], list[npt.NDArray[np.uint8]]]:
        """Write channels and header (not yet durable); return info, file bytes, channels.

        The returned pieces (header, times, channels, in file order) let a caller hash the
        file from memory, and the channel arrays let it count events per channel (see
        :func:`count_channels`), while :meth:`commit` waits for the disk. ``info.sha256``
        and ``info.counts_per_channel`` are left for the caller to fill.
        """
        for ch in self._channels:
            data = ch.data.cast("B")
            self._fh.write(data)
            self._crc = zlib.crc32(data, self._crc)
        header = ChunkHeader(
            self.seq, self._count, self._first_t, self._last_t, self._first_block_seq, self._crc
        )
        packed = header.pack()
        self._fh.seek(0)
        self._fh.write(packed)
        self._fh.flush()
        pieces = [memoryview(packed), *self._times, *(c.data.cast("B") for c in self._channels)]
        channels = list(self._channels)
        self._times.clear()
        self._channels.clear()
        info = ChunkInfo(
            file=self.final_path.relative_to(self._relative_to).as_posix(),
            seq=self.seq,
            count=self._count,
            first_t_ps=self._first_t,
            last_t_ps=self._last_t,
            first_block_seq=self._first_block_seq,
            payload_crc32=self._crc,
            size=header.file_size,
        )
        return info, pieces, channels

    def commit(self) -> None:
        """Make the sealed chunk durable and visible: fsync, rename, fsync the directory."""
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp_path, self.final_path)
        fsync_dir(self.final_path.parent)

    def finish(self) -> ChunkInfo:
        """:meth:`seal` + sha256 + :meth:`commit` in one call (the simple, serial path)."""
        info, pieces, channels = self.seal()
        info.sha256 = sha256_pieces(pieces)
        info.counts_per_channel = count_channels(channels, self.known_channels)
        self.commit()
        return info

    def abort(self) -> None:
        """Close the temporary file without renaming (it stays for recovery to report)."""
        if not self._fh.closed:
            self._fh.close()


def count_channels(
    channels: list[npt.NDArray[np.uint8]], known_channels: set[int]
) -> dict[int, int]:
    """Events per channel over ``channels`` (``known_channels`` is a speed hint, updated)."""
    counts: dict[int, int] = {}
    for ch in channels:
        _add_channel_counts(counts, ch, known_channels)
    return dict(sorted(counts.items()))


def _add_channel_counts(
    counts: dict[int, int], ch: npt.NDArray[np.uint8], known_channels: set[int]
) -> None:
    """Accumulate events per channel.

    ``np.bincount`` casts uint8 to intp and runs at ~50 Mev/s; comparing against the few
    channels already seen runs at several Gev/s, so try that first and fall back to
    ``bincount`` only when a block holds a channel not seen before.
    """
    n = int(ch.shape[0])
    found = {c: int(np.count_nonzero(ch == c)) for c in sorted(known_channels)}
    if sum(found.values()) != n:
        full = np.bincount(ch, minlength=256)
        found = {int(c): int(full[c]) for c in np.flatnonzero(full)}
        known_channels.update(found)
    for c, k in found.items():
        if k:
            counts[c] = counts.get(c, 0) + k


def sha256_pieces(pieces: list[memoryview]) -> str:
    """Hex sha256 of the concatenation of ``pieces`` (hashlib releases the GIL)."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
    return digest.hexdigest()
