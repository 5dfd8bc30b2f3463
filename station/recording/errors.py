"""Typed errors of the recording layer.

A recording problem is never a device problem, so these do not derive from
``drivers.errors.DeviceError``: the daemon treats them as "the pass record is at risk"
and the CLI turns them into a one-line message and exit code 1.
"""

from __future__ import annotations

from pathlib import Path


class RecordingError(Exception):
    """Writing or reading a pass bundle failed (disk error, corrupt file, bad bundle).

    Args:
        message: what went wrong and, where there is one, what to do.
        path: the file or directory concerned.
    """

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.message = message
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ChunkError(RecordingError):
    """An event chunk file is corrupt or truncated; never yields its data.

    ``reason`` is one of :data:`CHUNK_ERROR_REASONS` so callers and tests can tell the
    failure modes apart without parsing the message.
    """

    def __init__(self, message: str, *, path: Path | str, reason: str) -> None:
        if reason not in CHUNK_ERROR_REASONS:
            raise ValueError(f"unknown chunk error reason {reason!r}")
        self.reason = reason
        super().__init__(f"{reason}: {message}", path=path)


#: failure modes of a chunk file, in the order the reader checks them
CHUNK_ERROR_REASONS = (
    "io",  # the file cannot be opened or read
    "length",  # shorter than a header, or size does not match the event count
    "magic",  # not a qgs chunk file (or an unfinished temporary file)
    "header-crc",  # header bytes damaged
    "version",  # written by an unknown (newer) format version
    "payload-crc",  # event bytes damaged
    "content",  # CRC fine but fields inconsistent (times out of order, wrong first/last)
    "missing",  # a chunk sequence number is absent from the bundle
)
