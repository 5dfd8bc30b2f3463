"""A timestamp-block stream with gap accounting and back-pressure (used by the IDQ driver).

A reader task takes decoded :class:`~drivers.datatypes.EventBlock` s from a
:class:`BlockSource` (which receives and decodes the device's messages) and puts them into a
bounded :class:`asyncio.Queue`. When the consumer falls behind the queue fills, the reader
waits in ``put`` and stops reading the socket; ZeroMQ's receive and send high-water marks
then make the sender wait too. Nothing is dropped on this side: a block that is missing
arrives as a jump in the device's sequence number, which is counted in
:attr:`BlockStream.gaps` and logged, never hidden.

A quiet stream is not necessarily a dead one (a device sends only non-empty blocks): after
``idle_timeout_s`` without a block the optional ``on_idle`` check asks the device (bounded)
whether it is alive; it raises to fail the stream, or returns to keep waiting. Without a
check, the idle timeout itself fails the stream with DeviceTimeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from drivers.datatypes import EventBlock
from drivers.errors import DeviceError, DeviceTimeout

log = logging.getLogger(__name__)

QUEUE_BLOCKS = 16  #: decoded blocks buffered between the socket reader and the consumer
RECV_POLL_S = 0.5  #: wall seconds of one bounded receive; an idle stream just polls again


class BlockSource(Protocol):
    """Where blocks come from: receives and decodes one device message per call."""

    async def next_block(self, timeout: float) -> EventBlock | None:
        """The next block; None at the end of the stream; DeviceTimeout after ``timeout``
        wall seconds without a message; ProtocolError for a malformed one."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Gap:
    """Blocks the device sent that never arrived: ``expected`` .. ``got - 1``."""

    expected: int
    got: int

    @property
    def missing(self) -> int:
        return self.got - self.expected


_END = object()


class BlockStream:
    """Reads and queues blocks from ``source``; iterate with :meth:`blocks`.

    Args:
        source: the block source (its socket already connected).
        device: device URL for messages.
        idle_timeout_s: wall seconds without any block before ``on_idle`` runs (or, without
            it, before the stream fails with DeviceTimeout).
        on_idle: bounded liveness check of the device; raises (a DeviceError) when the
            device is gone, returns when it is alive but quiet.
        queue_blocks: bound of the decoded-block queue (the back-pressure window).
    """

    def __init__(
        self,
        source: BlockSource,
        *,
        device: str,
        idle_timeout_s: float = 10.0,
        on_idle: Callable[[], Awaitable[None]] | None = None,
        queue_blocks: int = QUEUE_BLOCKS,
    ) -> None:
        if not idle_timeout_s > 0 or queue_blocks < 1:
            raise ValueError("idle_timeout_s must be > 0 and queue_blocks >= 1")
        self._source = source
        self._device = device
        self._idle_timeout = idle_timeout_s
        self._on_idle = on_idle
        self.idle_checks = 0  #: liveness checks run while the stream was quiet
        self._queue: asyncio.Queue[EventBlock | object] = asyncio.Queue(queue_blocks)
        self._done = False
        self._taken = 0  #: queue items the consumer has taken (progress indicator)
        self._failure: Exception | None = None
        self._next_seq: int | None = None
        self.gaps: list[Gap] = []
        self.blocks_received = 0
        self.events_received = 0
        self.ended = False
        self._task = asyncio.create_task(self._read(), name=f"blockstream {device}")

    @property
    def missing_blocks(self) -> int:
        """Total blocks lost in all gaps."""
        return sum(g.missing for g in self.gaps)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            while True:
                try:
                    block = await self._source.next_block(min(RECV_POLL_S, self._idle_timeout))
                except DeviceTimeout:
                    if loop.time() - last < self._idle_timeout:
                        continue
                    if self._on_idle is None:
                        raise DeviceTimeout(
                            f"no timestamp block for {self._idle_timeout:g} s",
                            device=self._device,
                            hint="is acquisition running and the stream connected?",
                        ) from None
                    self.idle_checks += 1
                    await self._on_idle()  # raises when the device is gone
                    last = loop.time()
                    continue
                last = loop.time()
                if block is None:
                    self.ended = True
                    return
                self._account(block)
                await self._queue.put(block)  # waits when full: back-pressure, no drop
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # hand every failure to the consumer, in order
            self._failure = exc
        finally:
            self._done = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_END)  # wakes a consumer waiting on an empty queue

    def _account(self, block: EventBlock) -> None:
        if self._next_seq is not None and block.seq != self._next_seq:
            gap = Gap(self._next_seq, block.seq)
            self.gaps.append(gap)
            log.warning(
                "%s: timestamp stream gap: blocks %d..%d missing (%d blocks; %d gaps so far)",
                self._device,
                gap.expected,
                gap.got - 1,
                gap.missing,
                len(self.gaps),
            )
        self._next_seq = block.seq + 1
        self.blocks_received += 1
        self.events_received += len(block)

    async def blocks(self) -> AsyncIterator[EventBlock]:
        """Decoded blocks in arrival order until the end of the stream (or a failure)."""
        while not (self._done and self._queue.empty()):
            item = await self._queue.get()
            self._taken += 1
            if isinstance(item, EventBlock):
                yield item
        failure = self._failure
        if failure is not None:
            if isinstance(failure, DeviceError):
                raise failure
            raise DeviceError(
                f"timestamp stream reader failed: {failure!r}", device=self._device
            ) from failure

    async def wait_end(self, timeout_s: float, *, stalled_s: float = 0.5) -> bool:
        """Wait (wall seconds) for the reader to see the end-of-stream marker.

        Gives up early when the queue has stayed full for ``stalled_s`` with nobody taking
        blocks: then no consumer is left to make room, and waiting cannot help.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        taken, since = self._taken, loop.time()
        while not self._task.done() and loop.time() < deadline:
            if self._taken != taken or not self._queue.full():
                taken, since = self._taken, loop.time()
            elif loop.time() - since > stalled_s:
                break
            await asyncio.wait({self._task}, timeout=0.05)
        return self.ended

    async def close(self) -> None:
        """Stop the reader and close the socket."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self._source.close()
