"""The reply path shared by every wire front-end, with the transport-level faults applied.

A protocol handler only decides *what* to answer; :class:`FaultyReplies` decides whether and
how the bytes reach the client, exactly where a real device (or its cable) would misbehave
(see :mod:`sim_hardware.faults`):

- ``hang``: replies are dropped (the device reads but never answers);
- ``garbage``: random bytes of the same length replace the reply;
- ``slow``: the reply is delayed by ``params["delay_s"]`` clock seconds (order preserved);
- ``disconnect``: nothing is sent (the server also stops reading).

``error_reply`` is protocol-specific and is checked by the handler itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from drivers.clock import Clock
from sim_hardware.faults import FaultInjector, FaultKind

log = logging.getLogger(__name__)


class ReplyWriter(Protocol):
    """Where a protocol handler sends its reply bytes."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the client (subject to the device's active faults)."""
        ...


#: A protocol handler: reads requests from the stream, answers through the writer, and
#: returns only at end of stream. One handler runs per pty / per TCP connection.
Handler = Callable[[asyncio.StreamReader, ReplyWriter], Awaitable[None]]


class FaultyReplies:
    """A :class:`ReplyWriter` that applies transport faults before handing bytes to ``sink``.

    Args:
        sink: writes bytes to the transport now (must not block).
        faults: the device's fault schedule (None: never faulty).
        clock: clock for ``slow`` delays (clock seconds).
        seed: seed of the garbage-byte generator (reproducible faults).
    """

    def __init__(
        self,
        sink: Callable[[bytes], None],
        *,
        faults: FaultInjector | None,
        clock: Clock,
        seed: int = 0,
    ) -> None:
        self._sink = sink
        self._faults = faults
        self._clock = clock
        self._rng = random.Random(seed)
        self._delayed: deque[tuple[float, bytes]] = deque()
        self._sender: asyncio.Task[None] | None = None

    def _active(self, kind: FaultKind) -> bool:
        return self._faults is not None and self._faults.active(kind) is not None

    def write(self, data: bytes) -> None:
        if not data or self._active(FaultKind.DISCONNECT) or self._active(FaultKind.HANG):
            return
        if self._active(FaultKind.GARBAGE):
            data = self._rng.randbytes(len(data))
        delay = 0.0
        if self._faults is not None and (slow := self._faults.active(FaultKind.SLOW)) is not None:
            delay = max(0.0, float(slow.params.get("delay_s", 1.0)))
        if delay <= 0.0 and not self._delayed:
            self._sink(data)
            return
        # Keep replies in order: a fast reply never overtakes a delayed one.
        due = self._clock.now() + delay
        if self._delayed:
            due = max(due, self._delayed[-1][0])
        self._delayed.append((due, data))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_delayed())

    async def _send_delayed(self) -> None:
        while self._delayed:
            due, data = self._delayed[0]
            await self._clock.sleep_until(due)
            self._delayed.popleft()
            if not self._active(FaultKind.DISCONNECT):
                self._sink(data)

    async def close(self) -> None:
        """Drop queued replies and stop the delayed sender (idempotent)."""
        self._delayed.clear()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
