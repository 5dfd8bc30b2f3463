"""Reading a pass bundle back: stream verified EventBlocks; report what a crash left.

:func:`iter_blocks` yields one :class:`EventBlock` per chunk file (``seq`` = chunk
sequence number, ``meta["file"]`` = the file), each fully verified first (header CRC,
length, payload CRC, time order). Anything wrong raises :class:`ChunkError` naming the file
and the check: bad data is never yielded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.datatypes import EventBlock
from station.recording.atomic import is_temp_name
from station.recording.chunkfile import HEADER_SIZE, chunk_seq_of, read_chunk
from station.recording.errors import ChunkError, RecordingError
from station.recording.manifest import read_manifest
from station.recording.recorder import EVENTS_DIR


def chunk_files(bundle_dir: Path) -> list[tuple[int, Path]]:
    """Final-named chunk files of a bundle as ``(seq, path)``, in sequence order."""
    events = Path(bundle_dir) / EVENTS_DIR
    if not events.is_dir():
        return []
    found = [(chunk_seq_of(p.name), p) for p in events.iterdir()]
    return sorted((seq, p) for seq, p in found if seq is not None)


def temp_files(bundle_dir: Path) -> list[Path]:
    """Temporary (unfinished) files left in a bundle, e.g. by a crash mid-chunk."""
    root = Path(bundle_dir)
    dirs = [root, root / EVENTS_DIR]
    return sorted(p for d in dirs if d.is_dir() for p in d.iterdir() if is_temp_name(p.name))


def _check_contiguous(seqs: list[int], bundle_dir: Path) -> None:
    for expected, seq in enumerate(seqs):
        if seq != expected:
            raise ChunkError(
                f"chunk {expected} is missing (next present is {seq})",
                path=Path(bundle_dir) / EVENTS_DIR,
                reason="missing",
            )


def iter_blocks(bundle_dir: Path | str) -> Iterator[EventBlock]:
    """Stream the bundle's events chunk by chunk, verifying every chunk before yielding it.

    For a closed bundle the chunk list comes from the manifest (a missing file is an
    error); for one still marked ``recording`` (crash) the directory is scanned.
    """
    root = Path(bundle_dir)
    manifest = read_manifest(root)
    if manifest.get("status") != "recording" and manifest.get("events"):
        listed = manifest["events"]["chunks"]
        entries = [(int(c["seq"]), root / c["file"]) for c in listed]
    else:
        entries = chunk_files(root)
    _check_contiguous([seq for seq, _ in entries], root)
    for seq, path in entries:
        if not path.exists():
            raise ChunkError("listed in the manifest but absent", path=path, reason="missing")
        chunk = read_chunk(path)
        if chunk.header.seq != seq:
            raise ChunkError(
                f"header says chunk {chunk.header.seq} but the file is chunk {seq}",
                path=path,
                reason="content",
            )
        yield EventBlock(
            seq,
            chunk.t_ps,
            chunk.channel,
            meta={"file": str(path), "first_block_seq": chunk.header.first_block_seq},
        )


@dataclass
class RecoveryReport:
    """What a (possibly crashed) bundle still holds.

    ``intact`` lists chunks that verify, in order and without holes from 0; anything after
    the first bad or missing chunk is listed in ``problems`` and not counted as recoverable.
    """

    bundle_dir: Path
    status: str
    intact: list[Path] = field(default_factory=list)
    events: int = 0
    first_t_ps: int | None = None
    last_t_ps: int | None = None
    problems: list[str] = field(default_factory=list)
    unfinished: list[tuple[Path, int]] = field(default_factory=list)  #: (temp file, bytes)
    log_rows: dict[str, int] = field(default_factory=dict)

    @property
    def lost_bytes_estimate(self) -> int:
        """Bytes of events in unfinished chunks (not recoverable: channels are written last)."""
        return sum(max(0, size - HEADER_SIZE) for _, size in self.unfinished)

    def summary(self) -> str:
        lines = [
            f"bundle {self.bundle_dir}: manifest status {self.status!r}",
            f"recoverable: {len(self.intact)} intact chunks, {self.events} events"
            + (
                f", t = {self.first_t_ps} .. {self.last_t_ps} ps"
                if self.first_t_ps is not None
                else ""
            ),
        ]
        for path, size in self.unfinished:
            lines.append(f"unfinished (lost): {path.name}, {size} bytes")
        for name, rows in sorted(self.log_rows.items()):
            lines.append(f"log {name}: {rows} rows")
        lines.extend(f"problem: {p}" for p in self.problems)
        return "\n".join(lines)


def recover_bundle(bundle_dir: Path | str) -> RecoveryReport:
    """Inspect a bundle (typically one left with status ``recording`` by a crash).

    Verifies every chunk file without stopping at the first failure, reports leftover
    temporary files (the chunk that was open at the crash) and log row counts. Reading
    stays safe: use :func:`iter_blocks` (which verifies again) to get the events.
    """
    root = Path(bundle_dir)
    try:
        status = str(read_manifest(root).get("status"))
    except RecordingError as exc:
        status = "unreadable"
        report = RecoveryReport(root, status)
        report.problems.append(str(exc))
    else:
        report = RecoveryReport(root, status)
    expected = 0
    broken = False
    for seq, path in chunk_files(root):
        if seq != expected and not broken:
            report.problems.append(f"chunk {expected} is missing (next present is {seq})")
            broken = True
        expected = seq + 1
        try:
            chunk = read_chunk(path)
        except ChunkError as exc:
            report.problems.append(str(exc))
            broken = True
            continue
        if broken:
            report.problems.append(f"{path.name} verifies but follows a missing/bad chunk")
            continue
        report.intact.append(path)
        report.events += chunk.header.count
        if chunk.header.count:
            if report.first_t_ps is None:
                report.first_t_ps = chunk.header.first_t_ps
            report.last_t_ps = chunk.header.last_t_ps
    report.unfinished = [(p, p.stat().st_size) for p in temp_files(root)]
    for log_file in sorted(root.glob("*.csv")):
        with open(log_file, "rb") as fh:
            report.log_rows[log_file.name] = max(0, sum(1 for _ in fh) - 1)
    return report


def manifest_summary(manifest: dict[str, Any]) -> str:
    """One line describing a manifest (for CLI output)."""
    events = manifest.get("events") or {}
    return (
        f"station {manifest.get('station')}, status {manifest.get('status')}, "
        f"{events.get('total', '?')} events in {len(events.get('chunks', []))} chunks, "
        f"{len(events.get('gaps', []))} gaps"
    )
