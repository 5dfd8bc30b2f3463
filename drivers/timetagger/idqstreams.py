"""One DataLinkTarget PAIR stream per input, merged into EventBlocks (a BlockSource).

protocols.md §3a: the DLT sends each input's timestamps on its own PAIR socket (little-endian
uint64, or ``(timestamp, ref_index)`` pairs with ``--with-ref-index``) and ends a stream with a
zero-length message; nothing is sent while an input is silent. One reader task polls every
input's PAIR socket and drains whatever is queued into a
:class:`~drivers.timetagger.merge.TimeMerge` (one wake-up per batch, not per message: the
inputs' messages of one device slice arrive together);
:meth:`MergedStreams.next_block` hands out what the merge has made final as one EventBlock
with a driver-assigned sequence number (0, 1, 2, ...: the documented stream has none, so the
device cannot report lost messages; see the driver's doc).

Rules (wall seconds, all bounded):

- **stall**: a silent input holds the others back for at most ``stall_s`` (the merge's stall
  rule); :meth:`MergedStreams.next_block` re-evaluates the merge as wall time passes.
- **bound**: an input holding ``max_pending`` events back is not read (it leaves the poll);
  its socket then fills and the DLT waits (back-pressure, no drop). The consumer of blocks
  drives everything: when it stops taking blocks, every input fills its bound and every
  sender waits.
- cancel-safe like :mod:`drivers.transport.zmqstream`: the only ``await`` is the readiness
  poll (its cancellation consumes nothing); messages are taken with synchronous NOBLOCK
  receives and pushed with no ``await`` in between.
- a reader failure (a malformed message, a socket error) fails the next ``next_block``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import zmq
import zmq.asyncio

from drivers.datatypes import EventBlock
from drivers.errors import DeviceTimeout, NotConnected
from drivers.timetagger.idqformat import decode_timestamps
from drivers.timetagger.merge import Channels, TimeMerge, Times

log = logging.getLogger(__name__)

STALL_S = 0.25  #: wall seconds a silent input may hold the others back (merge stall rule)
MAX_PENDING = 1 << 18  #: events one input may hold back before it is not read (2 MB)
STREAM_RCVHWM = 4  #: messages queued in one input's receive socket before the sender waits
POLL_MS = 500  #: one readiness poll (ms); an idle stream just polls again


class MergedStreams:
    """Per-input PAIR streams -> time-ordered EventBlocks (a :class:`BlockSource`).

    Args:
        endpoints: input number (1-based) -> the ``tcp://host:port`` its DLT stream is on.
        device: device URL for messages.
        ref_index: messages are ``(timestamp, ref_index)`` pairs (``--with-ref-index``).
        stall_s: wall seconds a silent input may hold the others back (module doc).
        max_pending: events one input may hold back before it is not read.

    Raises NotConnected when a socket cannot be opened.
    """

    def __init__(
        self,
        endpoints: Mapping[int, str],
        *,
        device: str,
        ref_index: bool = False,
        stall_s: float = STALL_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if not stall_s > 0 or max_pending < 1:
            raise ValueError("stall_s must be > 0 and max_pending >= 1")
        self._device = device
        self._ref_index = ref_index
        self._stall_s = stall_s
        self._max_pending = max_pending
        self.merge = TimeMerge(sorted(endpoints), stall_s=stall_s)
        self._sockets: dict[int, zmq.asyncio.Socket] = {}
        self._sync: dict[int, zmq.Socket[bytes]] = {}
        ctx = zmq.asyncio.Context.instance()
        try:
            for ch, endpoint in sorted(endpoints.items()):
                sock = ctx.socket(zmq.PAIR)
                self._sockets[ch] = sock
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.RCVHWM, STREAM_RCVHWM)  # before connect: the pipe copies it
                sock.connect(endpoint)
                self._sync[ch] = zmq.Socket.shadow(sock)
        except zmq.ZMQError as exc:
            self._close_sockets()
            raise NotConnected(f"cannot connect a PAIR socket: {exc}", device=device) from exc
        self._ended: set[int] = set()
        self._wake = asyncio.Event()  #: the reader pushed, an input ended, or a failure
        self._room = asyncio.Event()  #: the consumer took events: paused inputs may resume
        self._failure: Exception | None = None
        self._seq = 0
        self._task = asyncio.create_task(self._read(), name=f"idq inputs {device}")

    def _close_sockets(self) -> None:
        for sock in self._sockets.values():
            sock.close(linger=0)

    async def _read(self) -> None:
        merge = self.merge
        loop = asyncio.get_running_loop()
        try:
            while len(self._ended) < len(self._sockets):
                active = [
                    ch
                    for ch in self._sockets
                    if ch not in self._ended and merge.pending(ch) < self._max_pending
                ]
                for ch in self._sockets:  # paused: not read, so not silent (merge doc)
                    merge.set_paused(ch, ch not in active and ch not in self._ended)
                if not active:
                    self._wake.set()
                    self._room.clear()
                    await self._room.wait()
                    continue
                poller = zmq.asyncio.Poller()
                for ch in active:
                    poller.register(self._sockets[ch], zmq.POLLIN)
                if not await poller.poll(POLL_MS):  # cancel-safe: consumes nothing
                    continue
                now = loop.time()
                for ch in active:  # drain what is queued, no await from here to the push
                    self._drain(ch, now)
                self._wake.set()
        except asyncio.CancelledError:
            raise
        except zmq.ZMQError as exc:
            self._failure = NotConnected(f"stream socket failed: {exc}", device=self._device)
        except Exception as exc:  # handed to the consumer by next_block
            self._failure = exc
        finally:
            self._wake.set()

    def _drain(self, ch: int, now: float) -> None:
        sync, merge = self._sync[ch], self.merge
        while ch not in self._ended and merge.pending(ch) < self._max_pending:
            try:
                frames = sync.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) == 1 and not frames[0]:
                merge.end(ch)  # zero-length message: end of stream (§3a)
                self._ended.add(ch)
                return
            t_ps = decode_timestamps(
                frames, ref_index=self._ref_index, channel=ch, device=self._device
            )
            merge.push(ch, t_ps, now)

    async def next_block(self, timeout: float) -> EventBlock | None:
        """The next merged block; None once every input has ended and all is out;
        DeviceTimeout after ``timeout`` wall seconds with nothing final."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._wake.clear()  # before pop: a push after it sets the event again
            out = self.merge.pop(loop.time())
            if out is not None:
                self._room.set()
                return self._block(out)
            if self._failure is not None:
                raise self._failure
            if self.merge.done:
                return None
            if self._task.done():
                raise NotConnected("the stream reader stopped", device=self._device)
            self._room.set()  # nothing final: let every input be read
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeviceTimeout(f"no timestamps within {timeout:g} s", device=self._device)
            with contextlib.suppress(TimeoutError):  # a push, or time for the stall rule
                async with asyncio.timeout(min(remaining, self._stall_s / 4)):
                    await self._wake.wait()

    def _block(self, merged: tuple[Times, Channels]) -> EventBlock:
        block = EventBlock(self._seq, merged[0], merged[1])
        self._seq += 1
        return block

    async def close(self) -> None:
        """Stop the reader and close every socket."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._close_sockets()
