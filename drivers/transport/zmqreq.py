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
- Timeouts and cancellations never lose a reply (issue 10). pyzmq's asyncio ``recv`` returns
  a Future that the socket's reader callback resolves by *taking the message off the
  socket*; a task cancelled after that callback but before it resumed drops the message
  with the discarded result (pyzmq warns "A message has been dropped!" for the same race in
  its deserialising receives), and asyncio runs I/O callbacks before the timers due in the
  same loop iteration, so a reply and a cancel that coincide (after any stall of the loop)
  lost the reply while the transport still believed it outstanding: the next request then
  waited for a reply that was gone and timed out. So this module only *waits for
  readiness* (a :class:`zmq.asyncio.Poller`, whose cancellation consumes nothing) and then
  sends and receives with synchronous ``NOBLOCK`` calls on blocking shadows of the sockets,
  with no ``await`` between a message moving and the state (``_awaiting``) recording it.
  A request cancelled while waiting leaves its reply queued; the next request first collects
  it (and drops it: the caller that wanted it is gone), then gets its own reply.

Relation to :class:`~drivers.transport.link.DeviceLink` (the byte drivers' transaction
layer): ``request()`` gives the same guarantees at message level, by construction rather than
by a shield: one request at a time (``_io_lock``), a cancelled request's reply is consumed and
never handed to the next caller (the orphan flag above), and a timeout resynchronises (the
socket is recreated, dropping any late reply). The IDQ driver's SCPI and DataLinkTarget
control planes therefore call ``request()`` directly; wrapping it in a DeviceLink would add a
task and a shield per round trip for no further guarantee.
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


def _take(sock: zmq.Socket[bytes]) -> list[bytes] | None:
    """The next message's frames if one is queued, else None; never waits (NOBLOCK)."""
    try:
        return [bytes(f) for f in sock.recv_multipart(zmq.NOBLOCK)]
    except zmq.Again:
        return None


def _cancelled_by_close(closed: bool) -> bool:
    """Whether a CancelledError came from closing the sockets (which cancels a pending
    poll) rather than from a cancellation of the current task."""
    task = asyncio.current_task()
    return closed and task is not None and not task.cancelling()


class ZmqReqTransport(BufferedTransport):
    """A connected REQ socket (use :func:`open_zmq_req`)."""

    timeout_hint = "check that the device's ZeroMQ REP service is running and reachable"

    def __init__(self, address: ZmqAddress, timeout: float) -> None:
        super().__init__(address.url, timeout)
        self.endpoint = address.endpoint
        self._context = zmq.asyncio.Context.instance()
        self._io_lock = asyncio.Lock()  # one socket operation at a time
        self._awaiting = False  #: a request was sent and its reply not yet received
        self._orphan = False  #: the outstanding reply belongs to a request() now gone
        self.recreated = 0  #: sockets replaced after a timeout or a lost peer
        self._socket, self._monitor = self._new_socket()
        self._sync, self._sync_monitor = self._shadows()

    def _new_socket(self) -> tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(self.endpoint)
        return sock, monitor

    def _shadows(self) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
        """Blocking-API views of the same libzmq sockets, for synchronous NOBLOCK calls."""
        sync: zmq.Socket[bytes] = zmq.Socket.shadow(self._socket)
        sync_monitor: zmq.Socket[bytes] = zmq.Socket.shadow(self._monitor)
        return sync, sync_monitor

    def _close_socket(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=0)

    def _recreate(self, why: str) -> None:
        log.info("%s: recreating the REQ socket (%s)", self.url, why)
        self._close_socket()
        self._socket, self._monitor = self._new_socket()
        self._sync, self._sync_monitor = self._shadows()
        self._awaiting = False
        self.recreated += 1

    # The shadows know nothing of close(): every use is guarded by ``is_open`` with no
    # ``await`` in between, so a closed (possibly freed) libzmq socket is never touched.

    def _drain_monitor(self) -> None:
        """Drop disconnect events from before this request (ZeroMQ has since reconnected)."""
        for _ in range(64):  # bounded: a handful of events at most
            if not self._peer_lost():
                return

    def _peer_lost(self) -> bool:
        """Whether the monitor reported a disconnect (consumes that event; synchronous)."""
        return self.is_open and _take(self._sync_monitor) is not None

    def _take_reply(self) -> bytes | None:
        """The reply if it is queued (synchronous), recording that it was received."""
        if not self.is_open:
            return None
        frames = _take(self._sync)
        if frames is None:
            return None
        self._awaiting = False  # no await between receiving the reply and this record
        return b"".join(frames)

    def _require_socket(self) -> None:
        if not self.is_open:
            raise OSError("the transport was closed")

    async def _send_locked(self, data: bytes, timeout: float, *, orphan: bool = False) -> None:
        """Send one request (cancel-safe). ``orphan``: request() sends it and takes the
        reply itself, so if that caller is cancelled first nobody will read the reply."""
        self._require_socket()
        if self._awaiting:
            # Keep REQ alternation: collect the earlier reply first, keep it readable.
            reply = await self._recv_locked(timeout)
            if reply is None:
                raise OSError("the peer disconnected before replying to the previous request")
            if self._orphan:
                log.debug(
                    "%s: dropping the reply to a cancelled request: %s", self.url, preview(reply)
                )
            else:
                self._buffer += reply
        self._drain_monitor()
        poller = zmq.asyncio.Poller()
        poller.register(self._socket, zmq.POLLOUT)
        try:
            async with asyncio.timeout(timeout):
                for _ in range(1_000_000):  # bounded; ends at the send or the timeout
                    self._require_socket()
                    try:
                        self._sync.send(data, zmq.NOBLOCK)
                    except zmq.Again:
                        await poller.poll()  # until a peer can take it; consumes nothing
                        continue
                    self._awaiting = True  # no await between the send and this record
                    self._orphan = orphan
                    return
        except TimeoutError:
            self._require_socket()
            self._recreate("send timed out: no peer connected")
            raise
        except asyncio.CancelledError:
            if _cancelled_by_close(not self.is_open):
                raise OSError("the transport was closed while sending") from None
            raise
        except zmq.ZMQError as exc:
            raise OSError(f"REQ socket failed: {exc}") from exc
        raise TimeoutError  # pragma: no cover - the loop bound is never reached in time

    async def _recv_locked(self, timeout: float) -> bytes | None:
        """The outstanding reply; None if the peer disconnected; TimeoutError if silent.

        Cancel-safe: waits only for readiness; a cancelled wait leaves the reply queued and
        ``_awaiting`` set, so the next call (or the next request) collects it.
        """
        poller = zmq.asyncio.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        try:
            async with asyncio.timeout(timeout):
                for _ in range(1_000_000):  # bounded; ends at the reply, a loss or the timeout
                    if not self.is_open:
                        return None  # close() ended the wait; no new socket for it
                    reply = self._take_reply()
                    if reply is not None:
                        return reply
                    if self._peer_lost():
                        break
                    await poller.poll()  # consumes nothing
                else:  # pragma: no cover - the loop bound is never reached in time
                    raise TimeoutError
        except TimeoutError:
            if not self.is_open:
                return None
            reply = self._take_reply()  # a reply that arrived with the deadline still counts
            if reply is not None:
                return reply
            self._recreate("reply timed out")
            raise
        except asyncio.CancelledError:
            if _cancelled_by_close(not self.is_open):
                return None  # close() cancelled the poll: same as the check above
            raise
        except zmq.ZMQError as exc:
            if not self.is_open:
                return None
            raise OSError(f"REQ socket failed: {exc}") from exc
        self._recreate("peer disconnected during a request")
        return None

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
            if self._awaiting:
                self._take_reply()

    async def _shutdown(self) -> None:
        self._close_socket()

    # -- MessageTransport ------------------------------------------------------------------

    async def request(self, payload: bytes, *, timeout: float | None = None) -> bytes:
        """One REQ/REP round trip; the reply is returned, not buffered."""
        self._require_open("send a request")
        bound = self._bound(timeout)
        try:
            async with self._io_lock:
                await self._send_locked(bytes(payload), bound, orphan=True)
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
