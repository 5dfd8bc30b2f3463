"""`qgs bundle verify`: check every chunk and every manifest hash of a pass bundle.

A bundle is OK when the manifest is final (``complete``, ``aborted`` or ``recovered``),
every file it lists exists with the recorded size and sha256, every chunk verifies
(:func:`~station.recording.chunkfile.read_chunk`), chunk numbers run 0..N-1 with no extra
or leftover temporary files, and the event totals agree with the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from station.recording.chunkfile import read_chunk
from station.recording.errors import ChunkError, RecordingError
from station.recording.manifest import read_manifest
from station.recording.reader import chunk_files, temp_files
from station.recording.recorder import sha256_file

ACCEPTED_STATUSES = ("complete", "aborted", "recovered")


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_bundle`; ``problems`` name the file and what is wrong."""

    bundle_dir: Path
    status: str = "?"
    chunks_ok: int = 0
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "OK" if self.ok else f"CORRUPT ({len(self.problems)} problems)"
        head = (
            f"{self.bundle_dir}: {verdict}; status {self.status!r}, "
            f"{self.chunks_ok} chunks verified, {self.events} events"
        )
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def verify_bundle(bundle_dir: Path | str) -> VerifyReport:
    """Verify a bundle; raises :class:`RecordingError` only if it is not a bundle at all."""
    root = Path(bundle_dir)
    if not root.is_dir():
        raise RecordingError("not a directory", path=root)
    manifest = read_manifest(root)  # raises if absent/unreadable: caller decides the exit code
    report = VerifyReport(root, status=str(manifest["status"]))
    if report.status not in ACCEPTED_STATUSES:
        report.problems.append(
            f"manifest status is {report.status!r}: the recording did not finish cleanly "
            "(crash?); run `qgs bundle recover` to see what is recoverable"
        )
    _check_hashes(root, manifest.get("files") or {}, report)
    listed = {c["file"]: c for c in (manifest.get("events") or {}).get("chunks", [])}
    expected_seq = 0
    for seq, path in chunk_files(root):
        rel = path.relative_to(root).as_posix()
        if seq != expected_seq:
            report.problems.append(f"chunk {expected_seq} is missing (next present is {seq})")
        expected_seq = seq + 1
        try:
            chunk = read_chunk(path)
        except ChunkError as exc:
            report.problems.append(str(exc))
            continue
        report.chunks_ok += 1
        report.events += chunk.header.count
        entry = listed.pop(rel, None)
        if entry is None:
            report.problems.append(f"{rel}: chunk file is not listed in the manifest")
        elif int(entry["count"]) != chunk.header.count:
            report.problems.append(
                f"{rel}: manifest says {entry['count']} events, chunk header says "
                f"{chunk.header.count}"
            )
    for rel in sorted(listed):
        report.problems.append(f"{rel}: listed in the manifest but missing")
    for tmp in temp_files(root):
        report.problems.append(f"{tmp.relative_to(root)}: unfinished temporary file (crash?)")
    total = (manifest.get("events") or {}).get("total")
    if total is not None and int(total) != report.events:
        report.problems.append(
            f"manifest total {total} events differs from {report.events} found in chunks"
        )
    return report


def _check_hashes(root: Path, files: dict[str, dict[str, object]], report: VerifyReport) -> None:
    for rel, entry in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            report.problems.append(f"{rel}: listed in the manifest but missing")
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            report.problems.append(
                f"{rel}: size {size} bytes differs from manifest {entry.get('size')}"
            )
            continue
        try:
            digest = sha256_file(path)
        except OSError as exc:
            report.problems.append(f"{rel}: cannot read ({exc.strerror or exc})")
            continue
        if digest != entry.get("sha256"):
            report.problems.append(f"{rel}: sha256 differs from the manifest")
