"""Binary timestamp formats of the IDQ-style DataLinkTarget stream (docs/devices/idq-emulator.md).

Two formats, both little-endian:

- **qgs all-channel stream** (``start-stream --channel all``; a qgs extension of the DLT, what
  the driver streams): one block per two-frame ZeroMQ message ``[header, records]``::

      header  24 bytes: magic b"QGSE", version u16 (1), reserved u16 (0),
                        seq u64 (0, 1, 2, ... per stream; a jump = lost blocks), count u64
      records count x 16 bytes: t_ps int64 (ps, non-decreasing), channel uint64 (1-based)

- **IDQ single-channel stream** (``--channel <n>``, IDQ's documented format, protocols.md §3a):
  one frame of bare ``uint64`` timestamps, or with ``--with-ref-index`` 16-byte records
  ``(timestamp u64, ref_index u64)``. It has no sequence numbers and no channel, and one
  stream per input cannot be merged in time order without holding events back until every
  input has spoken, so the driver does not use it.

A zero-length single-frame message ends a stream (both formats).

Decoding is a zero-copy :func:`numpy.frombuffer` view plus one cast per column.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from drivers.datatypes import EventBlock
from drivers.errors import ProtocolError

HEADER = struct.Struct("<4sHHQQ")  #: magic, version, reserved, seq, count
MAGIC = b"QGSE"
VERSION = 1
RECORD = np.dtype([("t_ps", "<i8"), ("channel", "<u8")])
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
