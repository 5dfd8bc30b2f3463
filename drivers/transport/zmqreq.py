"""ZeroMQ REQ socket as a byte transport and as a :class:`MessageTransport` (pyzmq asyncio).

``write()`` sends one message; the reply is received into the read buffer, where
``read_until``/``read_exactly`` frame it like any byte stream. ``request()`` is the
message-level round trip. Quirks handled here (protocols.md §3a):

- REQ enforces strict send/recv alternation and a REQ that timed out waiting for its reply
  can never send again, so on a timeout the socket is closed (LINGER 0, dropping the queued
  request and any late reply) and recreated.
- A second ``write()`` before the first reply was read first receives that reply into the
  buffer (bounded), so no reply bytes are lost and the alternation holds.
- ZeroMQ reconnects silently and a REQ whose peer went away mid-request waits forever; a
  socket monitor turns ``EVENT_DISCONNECTED`` during a request into NotConnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import zmq
import zmq.asyncio

from drivers.errors import DeviceTimeout, NotConnected
from drivers.transport.buffered import BufferedTransport, preview
from drivers.transport.url import ZmqAddress

log = logging.getLogger(__name__)


def _readable(sock: zmq.asyncio.Socket) -> bool:
    """Whether a message is waiting on ``sock`` (non-blocking)."""
    events = sock.get(zmq.EVENTS)
    return isinstance(events, int) and bool(events & zmq.POLLIN)


class ZmqReqTransport(BufferedTransport):
    """A connected REQ socket (use :func:`open_zmq_req`)."""

    timeout_hint = "check that the device's ZeroMQ REP service is running and reachable"

    def __init__(self, address: ZmqAddress, timeout: float) -> None:
        super().__init__(address.url, timeout)
        self.endpoint = address.endpoint
        self._context = zmq.asyncio.Context.instance()
        self._io_lock = asyncio.Lock()  # one socket operation at a time
        self._awaiting = False  #: a request was sent and its reply not yet received
        self.recreated = 0  #: sockets replaced after a timeout or a lost peer
        self._socket, self._monitor = self._new_socket()

    def _new_socket(self) -> tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(self.endpoint)
        return sock, monitor

    def _close_socket(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=0)

    def _recreate(self, why: str) -> None:
        log.info("%s: recreating the REQ socket (%s)", self.url, why)
        self._close_socket()
        self._socket, self._monitor = self._new_socket()
        self._awaiting = False
        self.recreated += 1

    async def _drain_monitor(self) -> None:
        """Drop disconnect events from before this request (ZeroMQ has since reconnected)."""
        for _ in range(64):  # bounded: a handful of events at most
            if not _readable(self._monitor):
                return
            await self._monitor.recv_multipart()

    async def _send_locked(self, data: bytes, timeout: float) -> None:
        if self._awaiting:
            # Keep REQ alternation: collect the earlier reply first, keep it readable.
            reply = await self._recv_locked(timeout)
            if reply is None:
                raise OSError("the peer disconnected before replying to the previous request")
            self._buffer += reply
        await self._drain_monitor()
        try:
            async with asyncio.timeout(timeout):
                await self._socket.send(data)
        except TimeoutError:
            self._recreate("send timed out: no peer connected")
            raise
        self._awaiting = True

    async def _recv_locked(self, timeout: float) -> bytes | None:
        """The outstanding reply; None if the peer disconnected; TimeoutError if silent."""
        recv = asyncio.ensure_future(self._socket.recv())
        lost = asyncio.ensure_future(self._monitor.recv_multipart())
        try:
            done, _ = await asyncio.wait(
                {recv, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (recv, lost):
                if not task.done():
                    task.cancel()
        if self._closed:
            return None  # close() ended the wait; no new socket for a closed transport
        if recv in done and not recv.cancelled():
            self._awaiting = False
            return bytes(recv.result())
        if lost in done:
            self._recreate("peer disconnected during a request")
            return None
        self._recreate("reply timed out")
        raise TimeoutError

    # -- BufferedTransport hooks -----------------------------------------------------------

    async def _receive(self, timeout: float, *, terminator: bytes | None, want: int) -> bytes:
        async with self._io_lock:
            if not self._awaiting:
                raise DeviceTimeout(
                    "nothing to read: no request is outstanding on this REQ socket "
                    f"(received so far {preview(self._buffer)})",
                    device=self.url,
                    hint="write() a request first; each request gets exactly one reply",
                )
            reply = await self._recv_locked(timeout)
        if reply is None:
            return b""
        if not reply:
            raise DeviceTimeout(
                "the reply was an empty message; there is nothing more to read "
                f"(received so far {preview(self._buffer)})",
                device=self.url,
                hint="commands without a query get an empty reply",
            )
        return reply

    async def _send(self, data: bytes, timeout: float) -> None:
        async with self._io_lock:
            await self._send_locked(data, timeout)

    async def _discard_pending(self) -> None:
        async with self._io_lock:
            if self._awaiting and _readable(self._socket):
                await self._socket.recv()
                self._awaiting = False

    async def _shutdown(self) -> None:
        self._close_socket()

    # -- MessageTransport ------------------------------------------------------------------

    async def request(self, payload: bytes, *, timeout: float | None = None) -> bytes:
        """One REQ/REP round trip; the reply is returned, not buffered."""
        self._require_open("send a request")
        bound = self._bound(timeout)
        try:
            async with self._io_lock:
                await self._send_locked(bytes(payload), bound)
                reply = await self._recv_locked(bound)
        except TimeoutError:
            raise DeviceTimeout(
                f"no reply to {preview(payload)} from {self.endpoint} within {bound:g} s "
                "(REQ socket recreated)",
                device=self.url,
                hint=self.timeout_hint,
            ) from None
        except OSError as exc:
            raise self._lost(f"requesting {preview(payload)}", exc) from exc
        if reply is None:
            raise NotConnected(
                f"peer disconnected before replying to {preview(payload)}",
                device=self.url,
                hint="the device restarted or went away; retry the request",
            )
        return reply


async def open_zmq_req(address: ZmqAddress, *, timeout: float) -> ZmqReqTransport:
    """Create a REQ socket connected to ``address`` (ZeroMQ connects lazily, in background)."""
    try:
        transport = ZmqReqTransport(address, timeout)
    except zmq.ZMQError as exc:
        raise NotConnected(
            f"cannot create a ZeroMQ REQ socket for {address.endpoint}: {exc}",
            device=address.url,
        ) from exc
    log.debug("opened %s", address.url)
    return transport
