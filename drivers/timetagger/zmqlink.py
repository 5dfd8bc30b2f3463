"""Bounded ZeroMQ request/reply and stream sockets for the IDQ driver (protocols.md §3a).

- :class:`ZmqRequester`: a REQ socket for SCPI (port 5555) or the DataLinkTarget (6060).
  A REQ socket that timed out waiting for a reply cannot send again (strict send/recv
  alternation), so on a timeout the socket is closed with LINGER 0 and recreated; the next
  request then starts clean and a late reply to the old one is discarded with it.
- :class:`ZmqReceiver`: a PAIR socket receiving timestamp blocks, with a receive high-water
  mark so that a slow reader makes the sender wait (ZeroMQ PAIR blocks at HWM, it does not
  drop).
"""

from __future__ import annotations

import asyncio
import logging

import zmq
import zmq.asyncio

from drivers.errors import DeviceTimeout, NotConnected

log = logging.getLogger(__name__)

STREAM_RCVHWM = 16  #: messages the receive side queues before the sender is held back


def _context() -> zmq.asyncio.Context:
    return zmq.asyncio.Context.instance()


class ZmqRequester:
    """Request/reply over a REQ socket; every round trip is bounded.

    Args:
        endpoint: ``tcp://host:port``.
        timeout_s: default wall seconds for one round trip.
        device: URL for messages.
    """

    def __init__(self, endpoint: str, *, timeout_s: float, device: str) -> None:
        self.endpoint = endpoint
        self._timeout = timeout_s
        self._device = device
        self._socket: zmq.asyncio.Socket | None = None
        self.recreated = 0  #: sockets replaced after a timeout

    def _open(self) -> zmq.asyncio.Socket:
        sock = _context().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    @property
    def is_open(self) -> bool:
        return self._socket is not None

    def open(self) -> None:
        if self._socket is None:
            self._socket = self._open()

    async def request(self, payload: bytes, *, timeout: float | None = None) -> bytes:
        """Send one message and return the one-message reply (wall-second bound)."""
        if self._socket is None:
            raise NotConnected("not connected", device=self._device, hint="call connect() first")
        bound = self._timeout if timeout is None else timeout
        sock = self._socket
        try:
            async with asyncio.timeout(bound):
                await sock.send(payload)
                return bytes(await sock.recv())
        except TimeoutError:
            self._recreate()
            raise DeviceTimeout(
                f"no reply to {payload[:60]!r} from {self.endpoint} within {bound:g} s",
                device=self._device,
                hint="check that the device (or DataLinkTarget service) is running and reachable",
            ) from None

    def _recreate(self) -> None:
        # A REQ socket that missed its reply is stuck in "expect recv" (§3a caution).
        if self._socket is not None:
            self._socket.close(linger=0)
        self._socket = self._open()
        self.recreated += 1
        log.warning("%s: REQ socket to %s recreated after a timeout", self._device, self.endpoint)

    async def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close(linger=0)


class ZmqReceiver:
    """A PAIR socket connected to a stream endpoint; ``recv`` is bounded."""

    def __init__(self, endpoint: str, *, device: str, rcvhwm: int = STREAM_RCVHWM) -> None:
        self.endpoint = endpoint
        self._device = device
        sock = _context().socket(zmq.PAIR)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
        sock.connect(endpoint)
        self._socket: zmq.asyncio.Socket | None = sock

    async def recv(self, timeout: float | None = None) -> memoryview:
        """Next message; DeviceTimeout after ``timeout`` wall seconds without one."""
        sock = self._socket
        if sock is None:
            raise NotConnected("stream closed", device=self._device)
        try:
            async with asyncio.timeout(timeout):
                frame = await sock.recv(copy=False)
        except TimeoutError:
            raise DeviceTimeout(
                f"no stream message from {self.endpoint} within {timeout:g} s",
                device=self._device,
            ) from None
        return frame.buffer  # zero-copy view; numpy keeps the frame alive

    async def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close(linger=0)
