"""Recorder throughput vs a raw sequential write of the same bytes (issue 6, "Recording").

Candidate: :class:`station.recording.Recorder` with its default settings (chunks of at most
1 s or 10 M events) fed 1 M-event EventBlocks of a 50 Mev/s stream, with CRC32, sha256 of
every chunk, fsync + atomic rename + directory fsync at each rotation, timed from the first
write to the end of ``close()``. Baseline: one plain ``open/write/fsync`` of the same byte
count (times then channels, 9 B/event) into a single file, in the same run and directory.
Targets: ratio >= 0.7 and >= 50 M events/s absolute (in ``extra``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.harness import Result
from drivers.clock import SystemClock
from drivers.datatypes import EventBlock
from station.recording.recorder import Recorder

EVENTS = 100_000_000  #: 2 s of a 50 Mev/s stream: 900 MB
BLOCK = 1_000_000
RATE_EV_S = 50e6
REPEAT = 3


def _make_blocks() -> list[EventBlock]:
    rng = np.random.default_rng(6)
    mean_gap_ps = 1e12 / RATE_EV_S
    t = np.cumsum(rng.exponential(mean_gap_ps, EVENTS)).astype(np.int64)
    ch = rng.integers(0, 4, EVENTS, dtype=np.uint8)
    return [
        EventBlock(i, t[s : s + BLOCK], ch[s : s + BLOCK])
        for i, s in enumerate(range(0, EVENTS, BLOCK))
    ]


async def _record(directory: Path, blocks: list[EventBlock]) -> float:
    rec = Recorder(directory, clock=SystemClock())  # defaults: 1 s / 10 M-event chunks
    t0 = time.perf_counter()
    for block in blocks:
        await rec.write(block)
    summary = await rec.close()
    elapsed = time.perf_counter() - t0
    if summary.events != EVENTS or not all(c.sha256 for c in summary.chunks):
        raise RuntimeError(f"recorder lost events or hashes: {summary}")
    return elapsed


def _raw_write(path: Path, parts: list[npt.NDArray[np.generic]]) -> float:
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        for part in parts:
            fh.write(part.data)
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - t0


def run() -> list[Result]:
    blocks = _make_blocks()
    parts: list[npt.NDArray[np.generic]] = [b.t_ps for b in blocks] + [b.channel for b in blocks]
    best_rec = best_raw = float("inf")
    root = Path(tempfile.mkdtemp(prefix="qgs-bench-recorder-", dir=Path.cwd()))
    try:
        for i in range(REPEAT):
            raw_path = root / f"raw{i}.bin"
            best_raw = min(best_raw, _raw_write(raw_path, parts))
            raw_path.unlink()
            rec_dir = root / f"bundle{i}"
            best_rec = min(best_rec, asyncio.run(_record(rec_dir, blocks)))
            shutil.rmtree(rec_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rec_rate, raw_rate = EVENTS / best_rec, EVENTS / best_raw
    return [
        Result(
            name="recorder throughput vs raw sequential write (same bytes, same run)",
            candidate="Recorder (default 10 M-event chunks, CRC32, sha256, fsync+rename)",
            candidate_value=rec_rate / 1e6,
            baseline="open/write/fsync of the same bytes, one file",
            baseline_value=raw_rate / 1e6,
            unit="M events/s",
            target_ratio=0.7,
            extra={
                "recorder_mev_s": rec_rate / 1e6,
                "raw_mev_s": raw_rate / 1e6,
                "recorder_mb_s": rec_rate * 9 / 1e6,
                "absolute_target_mev_s": 50.0,
                "meets_absolute_target": rec_rate >= 50e6,
                "events": EVENTS,
                "block_events": BLOCK,
                "repeat": REPEAT,
            },
        )
    ]
