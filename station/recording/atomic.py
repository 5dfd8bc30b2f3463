"""Crash-safe file replacement: write a temporary sibling, fsync it, rename, fsync the dir.

POSIX ``rename(2)`` within one directory is atomic, so a reader sees either the old file or
the complete new one. The data must reach the disk *before* the rename (``fsync`` of the file)
and the rename itself must be made durable (``fsync`` of the directory), otherwise after a
power loss the new name can point at an empty file (ext4 ``auto_da_alloc`` discussion,
LWN "ext4 and data loss", 2009).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from station.recording.errors import RecordingError


def fsync_dir(directory: Path) -> None:
    """Make renames/creations inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """The temporary sibling used while ``path`` is being written (hidden, ``.tmp``)."""
    return path.with_name(f".{path.name}.tmp")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably; raises :class:`RecordingError`."""
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise RecordingError(f"cannot write file: {exc.strerror or exc}", path=path) from exc


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON with :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
