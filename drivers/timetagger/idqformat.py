"""Binary timestamp-block format of the IDQ-style stream (see docs/devices/idq-emulator.md).

The real DataLinkTarget sends one channel per stream as bare little-endian ``uint64``
timestamps (protocols.md §3a). For one multi-channel stream with gap detection the emulator
documents this framing, which the driver decodes:

    header  (16 bytes): uint64 LE block sequence number, uint64 LE event count N
    records (16 bytes each, N of them): uint64 LE timestamp (ps), uint64 LE channel

mirroring the DLT's "with reference index" 16-byte record with the channel in the second
word. Decoding is a zero-copy :func:`numpy.frombuffer` view plus one cast per column.
"""

from __future__ import annotations

import numpy as np

from drivers.datatypes import EventBlock
from drivers.errors import ProtocolError

HEADER = np.dtype([("seq", "<u8"), ("count", "<u8")])
RECORD = np.dtype([("t", "<u8"), ("ch", "<u8")])


def decode_block(payload: bytes | memoryview, *, device: str) -> EventBlock:
    """One stream message -> EventBlock (seq, int64 ps, uint8 channel)."""
    size = len(payload)
    if size < HEADER.itemsize:
        raise ProtocolError(
            f"timestamp block of {size} bytes is shorter than its {HEADER.itemsize}-byte header",
            device=device,
        )
    header = np.frombuffer(payload, HEADER, count=1)[0]
    seq, count = int(header["seq"]), int(header["count"])
    body = size - HEADER.itemsize
    if body != count * RECORD.itemsize:
        raise ProtocolError(
            f"block {seq} announces {count} events but carries {body} bytes "
            f"(expected {count * RECORD.itemsize})",
            device=device,
        )
    records = np.frombuffer(payload, RECORD, count=count, offset=HEADER.itemsize)
    t_ps = records["t"].astype(np.int64)
    channel = records["ch"]
    if count and int(channel.max()) > 255:
        raise ProtocolError(f"block {seq} has a channel above 255", device=device)
    return EventBlock(seq, t_ps, channel.astype(np.uint8))


def encode_block(seq: int, t_ps: np.ndarray, channel: np.ndarray) -> bytes:
    """The inverse of :func:`decode_block` (for tests and benchmarks of the driver)."""
    out = np.empty(len(t_ps), RECORD)
    out["t"] = t_ps
    out["ch"] = channel
    header = np.array([(seq, len(t_ps))], HEADER)
    return header.tobytes() + out.tobytes()
