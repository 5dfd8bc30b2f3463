"""Async, crash-safe recorder of a time-tagger event stream into chunk files.

The event loop only decides *where* chunks start and end; the file work runs on worker
threads, in submission order: one thread writes times and CRCs as blocks arrive and seals
each chunk; behind it, one thread hashes sealed chunks (sha256 for the manifest) from memory
while another fsyncs and renames them, so hashing and disk waits overlap the next chunk's
writes. The writer queue holds at most ``max_pending`` operations: when the disk falls
behind, :meth:`Recorder.write` waits, so the tagger stream slows instead of memory growing.

Crash bound: a chunk is rotated when it spans ``max_chunk_s`` of event time, when it has
been open ``max_chunk_s`` of clock time (checked on every write and by a ticker task, so a
stalled stream is still flushed), or when it holds ``max_chunk_events``. Events at risk on
a crash are therefore the open chunk plus at most one chunk being finalized.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drivers.clock import Clock
from drivers.datatypes import EventBlock
from station.recording.chunkfile import ChunkInfo, ChunkWriter, count_channels, sha256_pieces
from station.recording.errors import RecordingError

log = logging.getLogger(__name__)

EVENTS_DIR = "events"
_HASH_BLOCK = 8 << 20


@dataclass(frozen=True, slots=True)
class Gap:
    """A discontinuity in the input block sequence numbers (events the tagger lost).

    ``kind`` is ``"missing"`` (blocks skipped) or ``"reordered"`` (a sequence number at or
    below the previous one). Times are the last event before and first event after, in ps.
    """

    kind: str
    after_block_seq: int
    next_block_seq: int
    missing_blocks: int
    t_ps_before: int | None
    t_ps_after: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "after_block_seq": self.after_block_seq,
            "next_block_seq": self.next_block_seq,
            "missing_blocks": self.missing_blocks,
            "t_ps_before": self.t_ps_before,
            "t_ps_after": self.t_ps_after,
        }


@dataclass
class RecordingSummary:
    """What was recorded: the chunk list and the totals the manifest needs."""

    chunks: list[ChunkInfo]
    blocks: int
    gaps: list[Gap]
    time_regressions: int
    error: str | None = None
    counts_per_channel: dict[int, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(c.count for c in self.chunks)

    @property
    def first_t_ps(self) -> int | None:
        filled = [c for c in self.chunks if c.count]
        return filled[0].first_t_ps if filled else None

    @property
    def last_t_ps(self) -> int | None:
        filled = [c for c in self.chunks if c.count]
        return filled[-1].last_t_ps if filled else None


class _ChunkSink:
    """Worker-thread side: the open :class:`ChunkWriter` and the pipeline behind it.

    ``writer`` thread: open, append (write + CRC), seal. Then, per sealed chunk, the
    ``hasher`` thread computes sha256 from memory while the ``committer`` thread fsyncs,
    renames and fsyncs the directory; so hashing and disk waits overlap the next chunk's
    writes. At most ``max_sealed`` chunks may be sealed but not yet committed (they hold
    their arrays), which bounds memory when hashing or the disk falls behind.
    """

    def __init__(
        self,
        events_dir: Path,
        bundle_dir: Path,
        *,
        max_sealed: int,
        timeout_s: float,
    ) -> None:
        self.events_dir = events_dir
        self.bundle_dir = bundle_dir
        # two hashers: sha256 (~2 GB/s) is the slowest stage; chunks hash independently
        self.hasher = ThreadPoolExecutor(2, thread_name_prefix="qgs-rec-hash")
        self.committer = ThreadPoolExecutor(1, thread_name_prefix="qgs-rec-commit")
        self.current: ChunkWriter | None = None
        self.chunks: list[ChunkInfo] = []  #: committed chunks, in order (committer thread)
        self.background: deque[Future[None]] = deque()  #: commit jobs, in order
        self.known_channels: set[int] = set()
        self._slots = threading.BoundedSemaphore(max_sealed)
        self._timeout_s = timeout_s

    def open(self, seq: int) -> None:
        self.current = ChunkWriter(
            self.events_dir, seq, relative_to=self.bundle_dir, known_channels=self.known_channels
        )

    def append(self, t: npt.NDArray[np.int64], ch: npt.NDArray[np.uint8], block_seq: int) -> None:
        assert self.current is not None, "append without an open chunk"
        self.current.append(t, ch, block_seq)

    def finish(self) -> None:
        assert self.current is not None, "finish without an open chunk"
        writer, self.current = self.current, None
        if not self._slots.acquire(timeout=self._timeout_s):
            writer.abort()
            raise TimeoutError(f"hashing/committing chunks stalled for {self._timeout_s:g} s")
        try:
            info, pieces, channels = writer.seal()
            hashed = self.hasher.submit(
                _hash_and_count, info, pieces, channels, self.known_channels
            )
            self.background.append(self.committer.submit(self._commit, writer, info, hashed))
        except BaseException:
            self._slots.release()
            raise

    def _commit(self, writer: ChunkWriter, info: ChunkInfo, hashed: Future[None]) -> None:
        try:
            writer.commit()
            hashed.result(timeout=self._timeout_s)
            self.chunks.append(info)
        finally:
            wait([hashed], timeout=self._timeout_s)
            self._slots.release()

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None

    def shutdown(self) -> None:
        self.committer.shutdown(wait=True)
        self.hasher.shutdown(wait=True)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 8 MiB pieces (hashlib releases the GIL)."""
    digest = hashlib.sha256()
    buf = bytearray(_HASH_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def _hash_and_count(
    info: ChunkInfo,
    pieces: list[memoryview],
    channels: list[npt.NDArray[np.uint8]],
    known_channels: set[int],
) -> None:
    info.sha256 = sha256_pieces(pieces)
    info.counts_per_channel = count_channels(channels, known_channels)


class Recorder:
    """Records :class:`EventBlock` s into ``<bundle_dir>/events/chunk_*.qev``.

    Args:
        bundle_dir: the pass bundle directory (created if missing).
        clock: control-plane clock for the wall-time side of rotation.
        max_chunk_s: rotate after this much event time (ps span) or clock time (s).
        max_chunk_events: rotate after this many events.
        max_pending: bound of the worker queue (operations, about one per block).
        io_timeout_s: wall seconds a single disk operation may take before the recorder
            reports the disk as stalled (:class:`RecordingError`).

    Blocks are written from the caller's arrays without copying: do not modify a block's
    arrays after passing it to :meth:`write`.
    """

    def __init__(
        self,
        bundle_dir: Path | str,
        *,
        clock: Clock,
        max_chunk_s: float = 1.0,
        max_chunk_events: int = 10_000_000,
        max_pending: int = 16,
        io_timeout_s: float = 60.0,
    ) -> None:
        if not max_chunk_s > 0 or max_chunk_events < 1 or max_pending < 1:
            raise ValueError("max_chunk_s, max_chunk_events and max_pending must be positive")
        self.bundle_dir = Path(bundle_dir)
        self.events_dir = self.bundle_dir / EVENTS_DIR
        try:
            self.events_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(
                f"cannot create events directory: {exc.strerror or exc}", path=self.events_dir
            ) from exc
        self._clock = clock
        self._max_chunk_s = max_chunk_s
        self._max_chunk_ps = round(max_chunk_s * 1e12)
        self._max_chunk_events = max_chunk_events
        self._max_pending = max_pending
        self._io_timeout_s = io_timeout_s
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="qgs-rec-write")
        self._sink = _ChunkSink(
            self.events_dir, self.bundle_dir, max_sealed=3, timeout_s=io_timeout_s
        )
        self._pending: deque[Future[None]] = deque()
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._failure: RecordingError | None = None
        self._failure_raised = False
        self._closed = False
        self._summary: RecordingSummary | None = None
        # chunk being filled (event-loop view)
        self._open = False
        self._chunk_seq = 0
        self._chunk_first_t = 0
        self._chunk_count = 0
        self._chunk_opened_at = 0.0
        # stream bookkeeping
        self._last_t: int | None = None
        self._last_block_seq: int | None = None
        self._blocks = 0
        self._gaps: list[Gap] = []
        self._time_regressions = 0

    # ------------------------------------------------------------------ public API

    @property
    def gaps(self) -> list[Gap]:
        return list(self._gaps)

    @property
    def chunks_done(self) -> int:
        return len(self._sink.chunks)

    async def write(self, block: EventBlock) -> None:
        """Append a block; may wait for the disk (back-pressure). Raises RecordingError."""
        self._check()
        if self._closed:
            raise RecordingError("write after close", path=self.bundle_dir)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="qgs-recorder-ticker")
        async with self._lock:
            self._track_seq(block)
            if len(block):
                await self._append(block)
            if self._open and (
                self._chunk_count >= self._max_chunk_events
                or self._clock.now() - self._chunk_opened_at >= self._max_chunk_s
            ):
                await self._rotate()
        self._check()

    async def flush(self) -> None:
        """Finish the open chunk now and wait until every chunk so far is on disk."""
        async with self._lock:
            if self._open:
                await self._rotate()
            await self._drain()
            for fut in list(self._sink.background):
                if self._failure is not None:
                    break
                await self._await_future(fut, "committing a chunk")
            self._collect_done()
        self._check()

    async def close(self) -> RecordingSummary:
        """Finish the open chunk, wait for writes and hashes, stop the threads.

        Raises :class:`RecordingError` if a disk error occurred that was not yet raised
        from :meth:`write`; the summary's ``error`` records it either way.
        """
        if self._summary is not None:
            return self._summary
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        async with self._lock:
            if self._open and self._failure is None:
                await self._rotate()
            await self._drain()
            if self._failure is not None:
                self._writer.submit(self._sink.abort)
            for fut in list(self._sink.background):
                if self._failure is not None:
                    break
                await self._await_future(fut, "committing a chunk")
            self._collect_done()
        # joining the worker threads waits on their last fsyncs: off the event loop, so a
        # closing bundle never stalls the other control loops of the process
        cancel = self._failure is not None
        await asyncio.to_thread(self._writer.shutdown, wait=True, cancel_futures=cancel)
        await asyncio.to_thread(self._sink.shutdown)
        counts: dict[int, int] = {}
        for info in self._sink.chunks:
            for ch, n in info.counts_per_channel.items():
                counts[ch] = counts.get(ch, 0) + n
        self._summary = RecordingSummary(
            chunks=list(self._sink.chunks),
            blocks=self._blocks,
            gaps=list(self._gaps),
            time_regressions=self._time_regressions,
            error=None if self._failure is None else str(self._failure),
            counts_per_channel=dict(sorted(counts.items())),
        )
        if self._failure is not None and not self._failure_raised:
            self._check()
        return self._summary

    # ------------------------------------------------------------------ internals

    def _track_seq(self, block: EventBlock) -> None:
        self._blocks += 1
        prev = self._last_block_seq
        if prev is not None and block.seq != prev + 1:
            gap = Gap(
                kind="missing" if block.seq > prev else "reordered",
                after_block_seq=prev,
                next_block_seq=block.seq,
                missing_blocks=max(0, block.seq - prev - 1),
                t_ps_before=self._last_t,
                t_ps_after=int(block.t_ps[0]) if len(block) else None,
            )
            self._gaps.append(gap)
            log.warning("event block sequence gap recorded: %s", gap)
        self._last_block_seq = block.seq

    async def _append(self, block: EventBlock) -> None:
        t, ch = block.t_ps, block.channel
        n = len(block)
        if self._last_t is not None and int(t[0]) < self._last_t:
            # A tagger restart or reordering: keep every chunk internally ordered.
            self._time_regressions += 1
            log.warning("event time went backwards at block %d; starting a new chunk", block.seq)
            if self._open:
                await self._rotate()
        start = 0
        while start < n:
            if not self._open:
                self._open_chunk(int(t[start]))
            limit = self._chunk_first_t + self._max_chunk_ps
            end_t = start + int(np.searchsorted(t[start:], limit, side="left"))
            end = min(n, end_t, start + self._max_chunk_events - self._chunk_count)
            if end > start:
                await self._submit(self._sink.append, t[start:end], ch[start:end], block.seq)
                self._chunk_count += end - start
            if end < n:
                await self._rotate()
            start = end
        self._last_t = int(t[-1])

    def _open_chunk(self, first_t: int) -> None:
        # queued like every other operation, so it runs before this chunk's appends
        self._pending.append(self._writer.submit(self._sink.open, self._chunk_seq))
        self._open = True
        self._chunk_first_t = first_t
        self._chunk_count = 0
        self._chunk_opened_at = self._clock.now()

    async def _rotate(self) -> None:
        self._open = False
        self._chunk_seq += 1
        await self._submit(self._sink.finish)

    async def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._pending.append(self._writer.submit(fn, *args))
        self._collect_done()
        while len(self._pending) > self._max_pending and self._failure is None:
            await self._await_future(self._pending[0], "writing events")
            self._collect_done()
        self._check()

    async def _drain(self) -> None:
        while self._pending and self._failure is None:
            await self._await_future(self._pending[0], "writing events")
            self._collect_done()

    async def _await_future(self, fut: Future[None], what: str) -> None:
        """Wait for one worker operation; a failure is recorded, not raised."""
        try:
            # shield: a timeout must not cancel the concurrent future (it would be lost)
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self._io_timeout_s)
        except TimeoutError:
            self._fail(
                RecordingError(
                    f"disk stalled: {what} took longer than {self._io_timeout_s:g} s",
                    path=self.events_dir,
                )
            )
        except Exception as exc:
            self._fail(self._disk_error(exc))

    def _collect_done(self) -> None:
        for queue in (self._pending, self._sink.background):
            while queue and queue[0].done():
                exc = queue.popleft().exception()
                if exc is not None:
                    self._fail(self._disk_error(exc))

    def _disk_error(self, exc: BaseException) -> RecordingError:
        if isinstance(exc, OSError):
            where = exc.filename or self.events_dir
            return RecordingError(f"disk error while recording: {exc.strerror or exc}", path=where)
        return RecordingError(f"recorder worker failed: {exc!r}", path=self.events_dir)

    def _fail(self, error: RecordingError) -> None:
        if self._failure is None:
            self._failure = error
            log.error("recording failed: %s", error)

    def _check(self) -> None:
        """Raise the recorded failure (again on every call: a failed recorder stays failed)."""
        if self._failure is not None:
            self._failure_raised = True
            raise self._failure

    async def _tick(self) -> None:
        """Rotate a chunk that has been open too long even when no block arrives."""
        period = self._max_chunk_s / 4
        while not self._closed:
            await self._clock.sleep(period)
            async with self._lock:
                if (
                    self._open
                    and self._failure is None
                    and self._clock.now() - self._chunk_opened_at >= self._max_chunk_s
                ):
                    try:
                        await self._rotate()
                    except RecordingError:
                        return  # kept in self._failure; raised by the next write/close
