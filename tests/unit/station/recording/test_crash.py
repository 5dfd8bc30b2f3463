"""Crash simulation: SIGKILL a recording child process, then check what survived.

The child records a deterministic 200 kev/s stream whose event time runs with wall time
(10 ms blocks every 10 ms) with ``max_chunk_s = 0.2``. After the kill every file under a
final chunk name must verify, chunks must run 0..N-1, the recovered events must be exactly
a prefix of the stream, and the loss must be bounded by the rotation interval (the open
chunk plus one being committed: 2 x max_chunk_s, plus scheduling slack).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from station.recording import commands
from station.recording.chunkfile import read_chunk
from station.recording.reader import chunk_files, iter_blocks, recover_bundle

REPO = Path(__file__).resolve().parents[4]
PER_BLOCK = 2000
BLOCK_PS = 10_000_000_000  # 10 ms of event time per block
MAX_CHUNK_S = 0.2

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    import numpy as np
    from drivers.clock import SystemClock
    from drivers.datatypes import EventBlock
    from station.recording.bundle import BundleWriter

    PER_BLOCK, BLOCK_PS = {per_block}, {block_ps}

    async def main() -> None:
        clock = SystemClock()
        writer = await BundleWriter.create(
            sys.argv[1], clock=clock, station="crashy", run_start_utc=datetime.now(UTC),
            max_chunk_s={max_chunk_s}, log_flush_s=0.05)
        step = BLOCK_PS // PER_BLOCK
        for i in range(100_000):
            t = i * BLOCK_PS + np.arange(PER_BLOCK, dtype=np.int64) * step
            ch = ((np.arange(PER_BLOCK) + i) % 4).astype(np.uint8)
            await writer.events.write(EventBlock(i, t, ch))
            writer.log_rates(clock.now(), {{0: 5e4, 1: 5e4}})
            print(i, flush=True)
            await clock.sleep(0.01)

    asyncio.run(main())
    """
).format(per_block=PER_BLOCK, block_ps=BLOCK_PS, max_chunk_s=MAX_CHUNK_S)


def _expected_stream(n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    step = BLOCK_PS // PER_BLOCK
    idx = np.arange(n_blocks * PER_BLOCK, dtype=np.int64)
    blk = idx // PER_BLOCK
    t = blk * BLOCK_PS + (idx % PER_BLOCK) * step
    ch = (((idx % PER_BLOCK) + blk) % 4).astype(np.uint8)
    return t, ch


def _run_and_kill(bundle: Path, min_blocks: int) -> int:
    """Start the child, let it write ``min_blocks`` blocks, SIGKILL it; last block printed."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(bundle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    last = -1
    try:
        deadline = time.monotonic() + 30.0
        assert proc.stdout is not None
        while last < min_blocks and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
        assert last >= min_blocks, (
            f"child stopped early: {proc.stderr.read() if proc.stderr else ''}"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    return last


def test_sigkill_mid_recording_loses_at_most_the_rotation_interval(tmp_path: Path) -> None:
    bundle = tmp_path / "crashy" / "pass"
    last = _run_and_kill(bundle, min_blocks=70)  # ~0.7 s of stream, 3+ chunks

    # Every file under a final chunk name is whole and verifies.
    finals = chunk_files(bundle)
    assert len(finals) >= 2
    for _, path in finals:
        read_chunk(path)

    report = recover_bundle(bundle)
    assert report.status == "recording"
    assert report.problems == []
    assert len(report.intact) == len(finals)

    # The recovered events are exactly a prefix of what the child wrote.
    got_t = np.concatenate([b.t_ps for b in iter_blocks(bundle)])
    got_ch = np.concatenate([b.channel for b in iter_blocks(bundle)])
    want_t, want_ch = _expected_stream(last + 1)
    assert len(got_t) == report.events
    assert len(got_t) <= len(want_t) + 50 * PER_BLOCK  # the child may have run on a little
    n = min(len(got_t), len(want_t))
    np.testing.assert_array_equal(got_t[:n], want_t[:n])
    np.testing.assert_array_equal(got_ch[:n], want_ch[:n])

    # Loss bound: at most the open chunk plus one being committed (+ 0.1 s of slack).
    written_ps = (last + 1) * BLOCK_PS
    recovered_ps = int(got_t[-1]) + BLOCK_PS // PER_BLOCK
    lost_s = (written_ps - recovered_ps) * 1e-12
    print(f"crash lost {lost_s:.3f} s of events ({len(finals)} chunks survived)")
    assert lost_s <= 2 * MAX_CHUNK_S + 0.1, f"lost {lost_s:.3f} s of events"


def test_cli_on_a_crashed_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "b"
    _run_and_kill(bundle, min_blocks=30)
    parser = argparse.ArgumentParser(prog="qgs")
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["bundle", "verify", str(bundle)])
    assert args.func(args) == 1
    assert "did not finish cleanly" in capsys.readouterr().out
    args = parser.parse_args(["bundle", "recover", str(bundle)])
    code = args.func(args)
    out = capsys.readouterr().out
    assert "manifest status 'recording'" in out
    assert "recoverable:" in out
    assert code == (1 if "unfinished" in out else 0)
