"""Binary timestamp formats of the IDQ DataLinkTarget stream (protocols.md §3a).

Two formats, both little-endian:

- **IDQ single-input stream** (``start-stream --channel <n>``, documented in §3a; what the
  driver streams): one frame of bare ``uint64`` timestamps, or with ``--with-ref-index``
  16-byte records ``(timestamp u64, ref_index u64)``. The unit is the device bin (1 ps on
  the ID1000 in HIRES per a secondary source, ⚠️ §3a; the driver reads ``DEVI:RES:BWID?``).
  No sequence numbers, no channel: the stream is that of one input. Decoded by
  :func:`decode_timestamps`; merged across inputs by :mod:`drivers.timetagger.merge`.
- **qgs all-channel stream** (``--channel all``; a qgs EXTENSION of the DLT that only the
  emulator serves, and only when asked): one block per two-frame ZeroMQ message
  ``[header, records]``::

      header  24 bytes: magic b"QGSE", version u16 (1), reserved u16 (0),
                        seq u64 (0, 1, 2, ... per stream; a jump = lost blocks), count u64
      records count x 16 bytes: t_ps int64 (ps, non-decreasing), channel uint64 (1-based)

  Kept (:func:`decode_block`, :func:`encode_block`) for tests and tools of the extension.

A zero-length single-frame message ends a stream (both formats).

Decoding is a zero-copy :func:`numpy.frombuffer` view plus one cast per column.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from drivers.datatypes import EventBlock
from drivers.errors import ProtocolError
from drivers.transport.zmqstream import ZmqStream

HEADER = struct.Struct("<4sHHQQ")  #: magic, version, reserved, seq, count
MAGIC = b"QGSE"
VERSION = 1
RECORD = np.dtype([("t_ps", "<i8"), ("channel", "<u8")])
REF_RECORD = np.dtype([("t_ps", "<i8"), ("ref_index", "<u8")])  #: ``--with-ref-index``
MAX_CHANNEL = 255  #: EventBlock channels are uint8


def decode_block(frames: list[bytes], *, device: str) -> EventBlock:
    """One qgs stream message ``[header, records]`` -> EventBlock (seq, int64 ps, uint8 ch).

    Raises ProtocolError naming what is wrong: frame count, header size, magic, version,
    record bytes vs. count, channel outside 1..255, or times decreasing inside the block.
    """
    if len(frames) != 2:
        sizes = [len(f) for f in frames]
        raise ProtocolError(
            f"timestamp message has {len(frames)} frame(s) of {sizes} bytes; "
            "expected 2 (header, records)",
            device=device,
            hint="the stream must be started with --channel all (qgs block format)",
        )
    header, body = frames
    if len(header) != HEADER.size:
        raise ProtocolError(
            f"block header of {len(header)} bytes; expected {HEADER.size}", device=device
        )
    magic, version, _, seq, count = HEADER.unpack(header)
    if magic != MAGIC:
        raise ProtocolError(f"block magic {magic!r}; expected {MAGIC!r}", device=device)
    if version != VERSION:
        raise ProtocolError(
            f"block format version {version}; this driver reads version {VERSION}",
            device=device,
            hint="update the driver or the DataLinkTarget",
        )
    if len(body) != count * RECORD.itemsize:
        raise ProtocolError(
            f"block {seq} announces {count} events but carries {len(body)} bytes "
            f"(expected {count * RECORD.itemsize})",
            device=device,
        )
    records = np.frombuffer(body, RECORD, count=count)
    t_ps = records["t_ps"].astype(np.int64)  # copy: contiguous, detached from the frame
    channel = records["channel"]
    if count:
        low, high = int(channel.min()), int(channel.max())
        if low < 1 or high > MAX_CHANNEL:
            raise ProtocolError(
                f"block {seq} has channel {low if low < 1 else high}; inputs are 1..{MAX_CHANNEL}",
                device=device,
            )
        if count > 1 and bool((t_ps[1:] < t_ps[:-1]).any()):
            raise ProtocolError(f"block {seq}: timestamps decrease inside the block", device=device)
    return EventBlock(seq, t_ps, channel.astype(np.uint8))


def encode_block(seq: int, t_ps: npt.ArrayLike, channel: npt.ArrayLike) -> list[bytes]:
    """The inverse of :func:`decode_block` (tests and benchmarks of the driver)."""
    t = np.asarray(t_ps)
    out = np.empty(len(t), RECORD)
    out["t_ps"] = t
    out["channel"] = np.asarray(channel)
    return [HEADER.pack(MAGIC, VERSION, 0, seq, len(t)), out.tobytes()]


def decode_timestamps(
    frames: list[bytes], *, ref_index: bool, channel: int, device: str
) -> npt.NDArray[np.int64]:
    """One single-input DLT message (§3a) -> int64 ps timestamps (a copy, non-decreasing).

    The wire word is uint64; it is read as int64 (two's complement), so times before the
    tagger's epoch, which the emulator can produce, keep their sign.

    Raises ProtocolError for a multi-frame message, a size that is not a whole number of
    records, or timestamps that decrease inside the message.
    """
    if len(frames) != 1:
        sizes = [len(f) for f in frames]
        raise ProtocolError(
            f"input {channel}: timestamp message has {len(frames)} frames of {sizes} bytes; "
            "expected 1 (IDQ single-input stream)",
            device=device,
            hint="is the DataLinkTarget streaming with --channel <n>?",
        )
    body = frames[0]
    width = REF_RECORD.itemsize if ref_index else 8
    if len(body) % width:
        raise ProtocolError(
            f"input {channel}: message of {len(body)} bytes is not a whole number of "
            f"{width}-byte records",
            device=device,
        )
    if ref_index:
        t_ps = np.frombuffer(body, REF_RECORD)["t_ps"].astype(np.int64)
    else:
        t_ps = np.frombuffer(body, "<i8").astype(np.int64, copy=False)  # no copy on LE hosts
    if len(t_ps) > 1 and bool((t_ps[1:] < t_ps[:-1]).any()):
        raise ProtocolError(f"input {channel}: timestamps decrease inside a message", device=device)
    return t_ps


def encode_timestamps(t_ps: npt.ArrayLike, *, ref_index: bool = False) -> bytes:
    """The inverse of :func:`decode_timestamps` (tests and benchmarks of the driver)."""
    t = np.asarray(t_ps, dtype=np.int64)
    if not ref_index:
        return t.astype("<i8").tobytes()
    out = np.zeros(len(t), REF_RECORD)
    out["t_ps"] = t
    return out.tobytes()


class QgsBlockSource:
    """Receives and decodes qgs all-channel blocks (the EXTENSION format) from a PAIR stream.

    A :class:`~drivers.timetagger.blockstream.BlockSource`; the driver streams the documented
    per-input format instead (:mod:`drivers.timetagger.idqstreams`). Kept for tools and
    tests that read the emulator's ``--channel all`` stream.
    """

    def __init__(self, stream: ZmqStream, *, device: str) -> None:
        self._stream = stream
        self._device = device

    async def next_block(self, timeout: float) -> EventBlock | None:
        frames = await self._stream.recv_multipart(timeout)
        if len(frames) == 1 and not frames[0]:
            return None  # zero-length message: end of stream
        return decode_block(frames, device=self._device)

    async def close(self) -> None:
        await self._stream.close()
